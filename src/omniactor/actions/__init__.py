"""Typed actions of every domain, their canonical text and JSON forms, and action tokenizers.

GUI (``gui``), continuous embodied (``continuous``) and discrete (``discrete``) actions
share one text form (``format_action`` / ``parse_action``) and one JSON form
(``action_to_json`` / ``action_from_json``).
"""

from .continuous import EEF_DELTA_GRIPPER, XYZ_GRIPPER, ActionNormalizer, ContinuousAction, ContinuousSpace
from .discrete import BABYAI_ACTIONS, DiscreteAction, DiscreteSpace
from .errors import ActionDecodeError, ActionError, ActionParseError, ActionValueError
from .gui import (
    GUI_ACTION_TYPES,
    KEYS,
    SCROLL_DIRECTIONS,
    Click,
    GuiAction,
    LongPress,
    OpenApp,
    Point,
    PressKey,
    Scroll,
    Swipe,
    Terminate,
    TypeText,
    Wait,
    points_of,
)
from .jsonform import action_from_json, action_to_json
from .text import Action, format_action, parse_action

__all__ = [
    "Action", "ActionDecodeError", "ActionError", "ActionNormalizer", "ActionParseError", "ActionValueError",
    "BABYAI_ACTIONS", "Click", "ContinuousAction", "ContinuousSpace", "DiscreteAction", "DiscreteSpace",
    "EEF_DELTA_GRIPPER", "GUI_ACTION_TYPES", "GuiAction", "KEYS", "LongPress", "OpenApp", "Point", "PressKey",
    "SCROLL_DIRECTIONS", "Scroll", "Swipe", "Terminate", "TypeText", "Wait", "XYZ_GRIPPER",
    "action_from_json", "action_to_json", "format_action", "parse_action", "points_of",
]
