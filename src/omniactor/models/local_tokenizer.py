"""Tokenizers and processors for the supported VLM families, built locally with no download.

Real checkpoints ship a tokenizer (``vocab.json`` + ``merges.txt``), special tokens and a
chat template; here we build the same kind of object from scratch: a byte-level BPE (the
Qwen2 pre-tokenizer: digits split one by one, NFC normalisation) trained on a small
built-in English corpus, the family's special tokens under their real names and in their
real order (after the BPE vocabulary, as in the checkpoints), eos/pad as the instruct
checkpoints set them, and the family's real chat template. The processor is the family's
real ``transformers`` processor class around its real image processor, set up so images
stay small (few image tokens) for CPU training.

    tok = build_local_tokenizer("qwen2-vl")           # Qwen2Tokenizer, len(tok) == 2048
    proc = build_local_processor("qwen2-vl", tok, image_size=224)
    proc.save_pretrained(d); AutoProcessor.from_pretrained(d)   # round trip, no hub

``transformers`` and ``tokenizers`` are imported inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerFast, ProcessorMixin


# ---------------------------------------------------------------------------------------------
# Per-family tokenizer facts (names, order and templates as in the real checkpoints)
# ---------------------------------------------------------------------------------------------

# Qwen2-VL-{2B,7B}-Instruct tokenizer_config.json / chat_template (identical for Qwen2.5-VL).
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# llava-hf/llava-onevision-qwen2-*-ov-hf chat_template.json: images first, then text; every
# content must be a list of {"type": ...} parts.
LLAVA_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{# Render all text next #}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\\n' + content['text'] }}{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\\n' + content['text'] }}{% endgeneration %}{% endfor %}"
    "{% endif %}{{'<|im_end|>'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_QWEN2_VL_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


@dataclass(frozen=True)
class TokenizerSpec:
    """What a family's checkpoints put in their tokenizer and processor files."""

    special_tokens: tuple[str, ...]
    """Special added tokens, in the checkpoint's id order, placed right after the BPE vocabulary."""
    extra_tokens: tuple[str, ...]
    """Non-special added tokens placed after the special ones (Qwen2.5: ``<tool_call>``, FIM)."""
    eos_token: str
    """End of a turn: what ``generate`` stops on (the instruct checkpoints' ``eos_token``)."""
    pad_token: str
    """Padding token (``<|endoftext|>`` in every Qwen-based checkpoint)."""
    image_token: str
    """Placeholder the processor expands to one token per image feature."""
    video_token: str
    """Placeholder the processor expands to one token per video feature."""
    chat_template: str
    """Jinja chat template, equal in behaviour to the checkpoint's."""
    model_max_length: int
    """``model_max_length`` of the checkpoint's tokenizer_config.json."""
    processor_class: str
    """``transformers`` processor class name."""
    image_processor_class: str
    """``transformers`` image processor class name (PIL backend: no torchvision needed)."""


TOKENIZER_SPECS: dict[str, TokenizerSpec] = {
    "qwen2-vl": TokenizerSpec(
        special_tokens=_QWEN2_VL_SPECIALS,
        extra_tokens=(),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        image_token="<|image_pad|>",
        video_token="<|video_pad|>",
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
        model_max_length=32768,
        processor_class="Qwen2VLProcessor",
        image_processor_class="Qwen2VLImageProcessorPil",
    ),
    "qwen2.5-vl": TokenizerSpec(
        special_tokens=_QWEN2_VL_SPECIALS,
        extra_tokens=(
            "<tool_call>",
            "</tool_call>",
            "<|fim_prefix|>",
            "<|fim_middle|>",
            "<|fim_suffix|>",
            "<|fim_pad|>",
            "<|repo_name|>",
            "<|file_sep|>",
        ),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        image_token="<|image_pad|>",
        video_token="<|video_pad|>",
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
        model_max_length=131072,
        processor_class="Qwen2_5_VLProcessor",
        image_processor_class="Qwen2VLImageProcessorPil",
    ),
    "llava-onevision": TokenizerSpec(
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"),
        extra_tokens=(),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        image_token="<image>",
        video_token="<video>",
        chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE,
        model_max_length=32768,
        processor_class="LlavaOnevisionProcessor",
        image_processor_class="LlavaOnevisionImageProcessorPil",
    ),
}


def tokenizer_spec(family: str) -> TokenizerSpec:
    """The :class:`TokenizerSpec` of ``family``; a clear error for an unknown family."""
    try:
        return TOKENIZER_SPECS[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(TOKENIZER_SPECS)}") from None


# ---------------------------------------------------------------------------------------------
# Built-in corpus: instructions of both domains, digits, punctuation and code-like actions
# ---------------------------------------------------------------------------------------------

_CORPUS_TEXT = """
You are a helpful assistant that controls a phone, a web browser or a robot arm.
Given a screenshot and a task, output the next action. Think about the goal first.
Action: click the blue button at the bottom of the screen.
Operation: pyautogui.click(x=0.634, y=0.927)
Action: type the word "hello" into the search box, then press enter.
Operation: pyautogui.write(text="hello world")
Operation: pyautogui.press(key="enter")
Operation: pyautogui.scroll(direction="down", amount=3)
Operation: pyautogui.hotkey("ctrl", "c")
click(x=0.125, y=0.5) long_press(x=0.75, y=0.25) swipe(direction="up") navigate_back() navigate_home()
open_app(app_name="Settings") type(text="New York") wait() terminate(status="success")
{"action_type": "click", "x": 0.482, "y": 0.316} {"action_type": "scroll", "direction": "left"}
{"action_type": "input_text", "text": "buy milk"} {"action_type": "open_app", "app_name": "Clock"}
Click on the checkbox labelled "Remember me". Select the third item in the list.
Tap the menu icon in the top left corner, open the settings page and turn on Wi-Fi.
Scroll down until you see the submit button; then click it. Focus the text field.
Enter the password and the username, then log in. Choose "Yes" in the dialog box.
Find the email from Alice and reply with "Thanks, see you on Monday at 10:30!".
Drag the slider to 75% and press OK. Close the pop-up window. Go back to the home screen.
Search for cheap flights from Paris to Tokyo on June 21, 2024 for 2 adults.
Add 3 apples, 1 loaf of bread and 12 eggs to the shopping cart, then check out.
Set an alarm for 7:45 am on weekdays. Share this photo with Bob via the messages app.
Open the calendar, create an event called "Team meeting" and invite everyone.
Highlight the text, copy it and paste it into the note. Sort the table by date.
Pick up the red block and put it on the green plate. Push the yellow cube to the goal.
Open the top drawer of the cabinet. Close the microwave door. Turn on the stove.
Put the black bowl in the bottom drawer and close it. Stack the blue cup on the box.
Move the gripper to the left, lower it slowly, grasp the handle and lift it up.
Reach the target position. Press the button on the wall. Slide the window open.
Go to the red ball. Pick up the purple key. Open the grey door. Put the box next to the ball.
Turn left, turn right, move forward, pick up, drop, toggle, done.
The robot should rotate the gripper by 45 degrees clockwise and release the object.
Put both the alphabet soup and the tomato sauce in the basket. Turn off the faucet.
Place the mug on the right of the plate; the ketchup is behind the milk carton.
Action: [0.12, -0.53, 0.07, 0.0, 0.0, -0.31, 1.0] gripper open; [-1.0, 1.0, 0.5, -0.5, 0.25, 0.9, -1.0] close.
The end effector moves by dx=0.02, dy=-0.01, dz=0.05 and the gripper state is -1.
Step 17 of 400: the episode ended with success after 95 steps. Reward: 1.0. Score 0.86.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 20 32 64 99 100 128 256 512 1000 1024 2048.
Coordinates are normalised to [0, 1]; x grows to the right and y grows downwards.
Punctuation: . , ; : ! ? ' " ( ) [ ] { } < > = + - * / \\ | _ # @ $ % ^ & ~ ` ...
def act(observation, instruction):
    image = observation["image"]
    return model.generate(image=image, prompt=instruction, max_new_tokens=32)
for i in range(10):
    if done: break
    action = policy(obs)  # one step
import numpy as np; x = np.clip(x, -1.0, 1.0); print(f"loss={loss:.4f} step={step}")
What is the weather like today? It is sunny and warm, about 25 degrees.
The quick brown fox jumps over the lazy dog. A small white cat sleeps on the chair.
Please describe the image. There is a table with a laptop, a phone, a cup of coffee and a pen.
The screenshot shows a login page with two input fields, a blue button and a link.
History of previous actions: click, type, scroll, click. Current instruction: follow the link.
The agent must decide which element to interact with. Elements: button, link, text box,
checkbox, radio button, drop-down menu, tab, icon, image, slider, switch, toggle, label.
Colors: red, green, blue, yellow, orange, purple, pink, brown, black, white, grey, gray.
Shapes: cube, block, ball, sphere, box, cylinder, bowl, plate, cup, mug, bottle, can, key.
Places: kitchen, table, shelf, drawer, cabinet, basket, tray, stove, sink, door, window.
Directions: up, down, left, right, forward, backward, north, south, east, west, top, bottom.
Apps: Chrome, Gmail, Maps, YouTube, Settings, Camera, Photos, Calendar, Contacts, Files.
Web: Amazon, Wikipedia, GitHub, Google, Reddit, booking, checkout, profile, account, cart.
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May
June July August September October November December morning afternoon evening night
one two three four five six seven eight nine ten first second third last next previous
Should I click here or there? Yes, click the second option. No, scroll up instead.
If the page does not load, wait a moment and try again. Otherwise report the error.
Instruction: move the cursor over the icon and double-click to open the file.
Instruction: select all the text in the editor and delete it, then save the document.
Instruction: in the email client, mark the message as read and move it to the archive.
Instruction: book a table for four people at an Italian restaurant tomorrow at 8 pm.
Instruction: increase the volume, disable notifications and enable dark mode.
Instruction: the robot arm should place the carrot in the pot and cover it with the lid.
Instruction: sweep the blocks into the dustpan, then hang the towel on the rack.
Observation: the gripper is above the object; the object is 3 cm to the left.
Thought: the target is visible, so the next step is to move towards it and grasp.
Download the attachment, rename the document to "report_final.pdf" and upload it again.
Navigate to the notifications panel, dismiss every message except the newest reminder.
Subscribe to the channel, like the video, and write a comment saying it was wonderful.
Compare the prices of both products, choose the cheaper one and proceed to payment.
Fill in the form: name, address, city, postal code, country, phone number, birthday.
Enable location services, allow the permission request, and install the update now.
Zoom into the map near the river, then measure the distance between the two bridges.
Translate the paragraph into French, Spanish and German; print the summary afterwards.
Refresh the browser tab, clear the history, bookmark this website and log out safely.
Rotate the screen to landscape mode, mute the microphone, unmute the speaker.
Expand the collapsed section, collapse the sidebar, resize the column and filter rows.
Answer the question about the chart: which quarter had the highest revenue growth?
The kitchen robot carefully grabs the spatula, flips the pancake and turns the burner off.
Insert the peg into the hole; align the handle horizontally before pulling the lever.
Unplug the charger, fold the cloth neatly, wipe the counter and throw the wrapper away.
Knock over the tower, hammer the nail, screw the lid tight, unscrew the cap, pour water.
Navigate through the hallway, avoid obstacles, enter the bedroom and approach the lamp.
Locate the remote control under the pillow on the sofa and give it to the person.
Manipulation tasks require precise positioning, smooth trajectories and stable grasps.
Embodied agents perceive images, interpret language, plan sequences and execute motions.
Graphical interfaces contain widgets, windows, menus, toolbars, dialogs and keyboards.
Training uses supervised learning, reinforcement learning, rewards, policies and values.
The model predicts discrete tokens; each token encodes a quantized continuous dimension.
Evaluation measures accuracy, success rate, grounding precision and episode length.
Experts demonstrate trajectories; the dataset stores observations, actions and results.
Vision encoders produce patches, merged features, embeddings and attention weights.
Language models generate responses autoregressively, conditioned on visual context.
Although the weather was terrible, everybody enjoyed the beautiful journey through mountains.
Children laughed while their parents prepared delicious breakfast with fresh vegetables.
Scientists discovered interesting patterns hidden inside enormous collections of numbers.
Students practise mathematics, physics, chemistry, biology, history and geography daily.
Musicians played guitars, violins, pianos and drums during the festival celebration.
Doctors recommend drinking water, sleeping enough, walking outside and eating fruit.
Customers complained because delivery arrived late, packaging was damaged and broken.
Engineers designed efficient bridges, buildings, airplanes, engines and powerful computers.
Traveling abroad requires passports, tickets, luggage, reservations and patience.
Volunteers cleaned beaches, planted trees, repaired houses and organized community events.
Temperature, pressure, humidity, velocity, acceleration, friction, torque and momentum.
Which, whose, whom, whatever, whenever, wherever, however, therefore, meanwhile, perhaps.
Quickly, slowly, gently, firmly, exactly, roughly, nearly, almost, already, always, never.
Small, medium, large, huge, tiny, narrow, wide, tall, short, long, heavy, light, empty, full.
Happy, angry, tired, hungry, curious, careful, brave, polite, friendly, honest, busy, calm.
"""


def default_corpus() -> list[str]:
    """The built-in training corpus: one string per line (a few KB of English, digits, code)."""
    return [line for line in _CORPUS_TEXT.strip().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


def _train_bpe(corpus: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a byte-level BPE with the Qwen2 pre-tokenizer; returns ``(vocab, merges)``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no <unk>
        special_tokens=[],
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


@lru_cache(maxsize=16)
def _trained_bpe(corpus: tuple[str, ...], vocab_size: int) -> tuple[tuple[tuple[str, int], ...], tuple]:
    vocab, merges = _train_bpe(list(corpus), vocab_size)
    return tuple(sorted(vocab.items(), key=lambda kv: kv[1])), tuple(merges)


def build_local_tokenizer(
    family: str, vocab_size: int = 2048, corpus: Iterable[str] | None = None
) -> PreTrainedTokenizerFast:
    """A ``Qwen2Tokenizer`` (a fast tokenizer) for ``family``, trained here, deterministic.

    ``vocab_size`` is the total size including the family's added tokens (special and not);
    on a corpus too small for that many merges the vocabulary is smaller (the built-in corpus
    reaches 2048). The added tokens take the ids right after the BPE vocabulary, in the
    checkpoint's order, so e.g. ``<|endoftext|>`` is the first added id as in Qwen (151643).
    """
    from tokenizers import AddedToken
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    spec = tokenizer_spec(family)
    added = spec.special_tokens + spec.extra_tokens
    n_bpe = vocab_size - len(added)
    if n_bpe < 257:
        raise ValueError(f"vocab_size={vocab_size} leaves {n_bpe} BPE tokens; need at least 257 (256 bytes + 1)")
    lines = tuple(default_corpus() if corpus is None else (str(x) for x in corpus))
    vocab_items, merges = _trained_bpe(lines, n_bpe)
    tokenizer = Qwen2Tokenizer(
        vocab=dict(vocab_items),
        merges=list(merges),
        unk_token=None,
        bos_token=None,
        eos_token=None,  # set below, once the added tokens have their checkpoint-order ids
        pad_token=None,
        model_max_length=spec.model_max_length,
        clean_up_tokenization_spaces=False,
        errors="replace",
        split_special_tokens=False,
    )
    specials = [AddedToken(t, special=True, normalized=False) for t in spec.special_tokens]
    tokenizer.add_tokens(specials, special_tokens=True)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in spec.extra_tokens])
    tokenizer.add_special_tokens(
        {
            "eos_token": spec.eos_token,
            "pad_token": spec.pad_token,
            "extra_special_tokens": [t for t in spec.special_tokens if t != spec.pad_token],
        }
    )
    tokenizer.chat_template = spec.chat_template
    _check_added_ids(tokenizer, added, first_id=len(vocab_items), family=family)
    return tokenizer


def _check_added_ids(tokenizer, added: tuple[str, ...], first_id: int, family: str) -> None:
    ids = tokenizer.convert_tokens_to_ids(list(added))
    expected = list(range(first_id, first_id + len(added)))
    if ids != expected:
        raise RuntimeError(f"{family}: added tokens got ids {ids}, expected {expected} (checkpoint order)")


# ---------------------------------------------------------------------------------------------
# Processor
# ---------------------------------------------------------------------------------------------


def allow_processors_without_torchvision() -> None:
    """Let the VLM processors work for images when ``torchvision`` is not installed.

    In ``transformers`` 5.x every processor with a ``video_processor`` argument (Qwen2-VL,
    Qwen2.5-VL, LLaVA-OneVision) requires a video processor, and video processors need
    ``torchvision``, so without it the processor can be neither built nor loaded, even for
    images only. When ``torchvision`` is missing this drops ``video_processor`` from the
    processors' sub-processor list (building, saving and ``AutoProcessor.from_pretrained``
    then handle image processor + tokenizer only; passing videos fails). With ``torchvision``
    installed it does nothing. Idempotent; called by every builder/loader of this package.
    """
    from transformers.processing_utils import ProcessorMixin
    from transformers.utils import is_torchvision_available

    if is_torchvision_available() or getattr(ProcessorMixin, "_omniactor_no_video", False):
        return
    original = ProcessorMixin.get_attributes.__func__

    def get_attributes(cls):
        return [name for name in original(cls) if name != "video_processor"]

    ProcessorMixin.get_attributes = classmethod(get_attributes)
    ProcessorMixin._omniactor_no_video = True

# The image processor settings of the real checkpoints (``image_size=None``).
_QWEN_REAL_MIN_PIXELS = 56 * 56
_QWEN_REAL_MAX_PIXELS = 28 * 28 * 16384  # 12845056, preprocessor_config.json of the VL checkpoints
_LLAVA_OV_REAL_TILE, _LLAVA_OV_REAL_GRID = 384, 6  # 384 px SigLIP tiles, anyres grid up to 6x6


def llava_onevision_grid(image_size: int | None) -> tuple[int, list[list[int]]]:
    """``(tile, image_grid_pinpoints)`` of LLaVA-OneVision for a processor ``image_size``.

    ``None``: the checkpoints' 384 px tiles in grids up to 6x6 (2304 px). Otherwise tiles of
    ``image_size // 2`` in grids up to 2x2, so an ``image_size`` square keeps full resolution.
    The model's ``vision_config.image_size`` and ``image_grid_pinpoints`` must be these.
    """
    tile, grid = (_LLAVA_OV_REAL_TILE, _LLAVA_OV_REAL_GRID) if image_size is None else (image_size // 2, 2)
    sides = range(1, grid + 1)
    return tile, [[i * tile, j * tile] for i in sides for j in sides]


def _qwen_vl_processor(spec: TokenizerSpec, tokenizer, image_size: int | None, patch_size: int | None, **image_kwargs):
    import transformers

    kwargs: dict[str, Any] = {
        "min_pixels": _QWEN_REAL_MIN_PIXELS,
        "max_pixels": _QWEN_REAL_MAX_PIXELS if image_size is None else image_size * image_size,
        "patch_size": patch_size or 14,
        "merge_size": 2,
        "temporal_patch_size": 2,
        **image_kwargs,
    }
    image_processor = getattr(transformers, spec.image_processor_class)(**kwargs)
    processor_cls = getattr(transformers, spec.processor_class)
    return processor_cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=spec.chat_template)


def _llava_onevision_processor(
    spec: TokenizerSpec, tokenizer, image_size: int | None, patch_size: int | None, **image_kwargs
):
    import transformers

    tile, pinpoints = llava_onevision_grid(image_size)
    kwargs: dict[str, Any] = {
        "size": {"height": tile, "width": tile},
        "image_grid_pinpoints": pinpoints,
        "image_mean": [0.5, 0.5, 0.5],  # SigLIP normalisation, as in the checkpoints
        "image_std": [0.5, 0.5, 0.5],
        **image_kwargs,
    }
    image_processor = getattr(transformers, spec.image_processor_class)(**kwargs)
    processor_cls = getattr(transformers, spec.processor_class)
    return processor_cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        num_image_tokens=(tile // (patch_size or 14)) ** 2,  # features of one tile (no CLS in SigLIP)
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
        chat_template=spec.chat_template,
    )


_PROCESSOR_BUILDERS = {
    "qwen2-vl": _qwen_vl_processor,
    "qwen2.5-vl": _qwen_vl_processor,
    "llava-onevision": _llava_onevision_processor,
}


def build_local_processor(
    family: str,
    tokenizer: PreTrainedTokenizerFast | None = None,
    image_size: int | None = 224,
    *,
    patch_size: int | None = None,
    **image_kwargs: Any,
) -> ProcessorMixin:
    """The family's real processor class around its image processor and a local tokenizer.

    ``image_size``: the side of the largest square image kept at full resolution (larger
    images are downscaled, keeping the aspect ratio); ``None`` = the real checkpoint's setting.
      - Qwen2-VL / Qwen2.5-VL: ``max_pixels = image_size**2``; one token per 28x28 pixels
        (patch 14, 2x2 merge), so 112x112 -> 16 tokens, 224x224 -> 64.
      - LLaVA-OneVision: anyres tiles of ``image_size // 2`` pixels in grids up to 2x2 (see
        :func:`llava_onevision_grid`); tokens = one base tile + the unpadded grid + one
        newline per grid row, so 112x112 -> 36 tokens with the tiny preset's patch 28.
    ``patch_size``: the vision tower's patch size (default: the family's real one, 14).
    ``image_kwargs`` go to the image processor and override the above.
    """
    allow_processors_without_torchvision()
    spec = tokenizer_spec(family)
    if tokenizer is None:
        tokenizer = build_local_tokenizer(family)
    missing = [t for t in spec.special_tokens if t not in tokenizer.get_vocab()]
    if missing:
        raise ValueError(f"tokenizer lacks the {family} special tokens {missing}; build it with build_local_tokenizer")
    return _PROCESSOR_BUILDERS[family](spec, tokenizer, image_size, patch_size, **image_kwargs)
