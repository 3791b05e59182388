"""Scripted experts, one file per environment: Meta-World's shipped policies, the BabyAI bot,
and MiniWoB++ solvers that read the DOM but act only through screen points and keys.

Build one with ``omniactor.envs.make_expert(env_name, env)``.
"""
