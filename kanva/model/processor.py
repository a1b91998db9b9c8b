"""KanvaProcessor: a LLaVA sample -> token ids, labels and pixel values, by the model's own saved processor.

Wraps the transformers `LlavaProcessor` saved in a model dir (image processor of the vision checkpoint,
tokenizer with `<image>`, chat template) and adds LLaVA's training rules:
- images: loaded from the image folder (missing / corrupt files are SampleErrors naming file and id),
  then LLaVA-1.5 `pad` (pad to a square with the image processor's mean colour, keeping aspect ratio) or
  `resize` (squash to the model's input size), then the image processor;
- prompts: rendered with the tokenizer's chat template; each `<image>` becomes exactly
  `num_image_tokens` image tokens (the number of features the vision tower + projector produce);
- labels: only assistant turns and their end-of-turn token are supervised. Each assistant turn's
  characters are found per message -- render messages[:k] with the generation prompt and messages[:k+1];
  the turn is what lies between, up to its end-of-turn marker. Prompt and answer segments are tokenized
  separately at those boundaries, so no token straddles them. Separator lengths are never counted, so
  any prefix-stable template works;
- template "plain" (the align stage): image tokens + caption + EOS, caption and EOS supervised;
- too long: truncating the tail is fine (Encoded.truncated says how many tokens went) unless it would cut
  an image or leave nothing supervised: then SampleError("too_long").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from kanva.data.llava import IMAGE_TOKEN, VIDEO_TOKEN, SampleError, sample_images, validate_sample
from kanva.errors import KanvaError
from kanva.model.presets import ASPECT_RATIOS
from kanva.model.templates import IMAGE_PLACE, VIDEO_PLACE, recorded_template
from kanva.model.video import Video, VideoError, read_video

IGNORE = -100  # label of an unsupervised position (PyTorch cross-entropy's ignore_index)


@dataclass
class Encoded:
    """One encoded sample. `labels[i]` is the target at position i (already aligned with input_ids; the
    model shifts internally), IGNORE where unsupervised."""

    input_ids: list[int]
    labels: list[int]
    pixel_values: torch.Tensor | None  # [n_images, 3, H, W] (llava) or [n_images, crops, 3, H, W] (onevision)
    id: str
    truncated: int = 0  # tokens cut from the tail to fit max_length
    # The model's other vision inputs (onevision: image_sizes, batch_num_images, pixel_values_videos).
    vision: dict[str, torch.Tensor] = field(default_factory=dict)

    def vision_row(self) -> dict[str, torch.Tensor]:
        """This sample's vision inputs as one row of `collate_vision`."""
        return {"pixel_values": self.pixel_values, **self.vision} if self.pixel_values is not None else dict(self.vision)

    @property
    def num_supervised(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def expand2square(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """LLaVA-1.5 `pad`: centre the image on a square canvas of its longer side, filled with `background`."""
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def as_rgb(im: Image.Image) -> Image.Image:
    """`im` in RGB; an image that is RGB already is returned as is (no copy of a large decoded image)."""
    return im if im.mode == "RGB" else im.convert("RGB")


def _count_media(content: Any, kind: str) -> int:
    """`<image>` (kind "image") or `<video>` places in a message content: a string, or transformers' list of
    typed parts."""
    if isinstance(content, str):
        return content.count(IMAGE_TOKEN if kind == "image" else VIDEO_TOKEN)
    if isinstance(content, list):
        return sum(1 for part in content if isinstance(part, dict) and part.get("type") == kind)
    return 0


def model_type(model_dir: Path) -> str | None:
    """config.json's model_type ("llava", "llava_onevision"), None without a readable config."""
    try:
        return json.loads((Path(model_dir) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return None


class KanvaProcessor:
    """Encodes LLaVA samples (training) and (images, messages) prompts (generation) for one model."""

    architecture = "llava"  # the ModelSpec architecture this class encodes for (a subclass per architecture)

    def __init__(self, processor, image_aspect_ratio: str | None = None, end_of_turn: str | None = None):
        allowed = ASPECT_RATIOS[self.architecture]
        image_aspect_ratio = image_aspect_ratio or allowed[0]
        if image_aspect_ratio not in allowed:
            raise KanvaError(f"image_aspect_ratio of a {self.architecture!r} model must be "
                             f"{' or '.join(map(repr, allowed))}, got {image_aspect_ratio!r}")
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_processor = processor.image_processor
        self.image_aspect_ratio = image_aspect_ratio
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        if self.image_token_id is None or self.image_token_id == self.tokenizer.unk_token_id:
            raise KanvaError(f"the tokenizer has no {IMAGE_TOKEN} token")
        self.end_of_turn = end_of_turn or self.tokenizer.eos_token
        self.end_of_turn_id = self.tokenizer.convert_tokens_to_ids(self.end_of_turn)
        self.image_size, self.num_image_tokens = self._measure()
        mean = getattr(self.image_processor, "image_mean", None) or [0.5, 0.5, 0.5]
        self.pad_color = tuple(int(round(255 * m)) for m in mean)
        # Does the tokenizer put a BOS in front of plain text? (Llama: yes; GPT-2/SmolLM2: no.)
        bos = self.tokenizer.bos_token_id
        self.adds_bos = bos is not None and self.tokenizer("a").input_ids[:1] == [bos]
        vid = self.tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        self.video_token_id: int | None = None if vid in (None, self.tokenizer.unk_token_id) else vid
        self.max_frames: int | None = None  # frames per video; None: the model takes no video

    # ---- the model's vision inputs (an architecture overrides these three) ------------------------------
    def image_token_counts(self, sizes: list[tuple[int, int]]) -> list[int]:
        """Tokens each image of one sample becomes, from the images' (height, width)."""
        return [self.num_image_tokens] * len(sizes)

    def video_token_count(self, video: Video) -> int:
        raise KanvaError("this model takes no video (an onevision model does: kanva model build --preset tiny-ov)")

    def vision_inputs(self, images: list[Image.Image], videos: list[Video]) -> dict[str, torch.Tensor]:
        """The model's vision inputs for one sample's images and videos (pixel_values, ...)."""
        return {"pixel_values": self.pixel_values(images)} if images else {}

    def save_pretrained(self, out_dir: str | Path) -> None:
        """Write the transformers processor (tokenizer, image processor, chat template) into `out_dir`."""
        self.processor.save_pretrained(out_dir)

    def _measure(self) -> tuple[tuple[int, int], int]:
        """The model's input size (by running the image processor once) and tokens per image."""
        probe = self.image_processor(images=[Image.new("RGB", (7, 5))], return_tensors="pt")["pixel_values"]
        size = (int(probe.shape[-2]), int(probe.shape[-1]))
        patch = self.processor.patch_size
        n = (size[0] // patch) * (size[1] // patch) + self.processor.num_additional_image_tokens
        return size, n - (1 if self.processor.vision_feature_select_strategy == "default" else 0)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> KanvaProcessor:
        """Load the processor saved in `model_dir`, with kanva.json's settings (defaults if absent). An
        onevision model directory gets an `OnevisionProcessor`."""
        from transformers import AutoProcessor

        model_dir = Path(model_dir)
        if cls is KanvaProcessor and model_type(model_dir) == "llava_onevision":
            from kanva.model.onevision import OnevisionProcessor

            return OnevisionProcessor.from_pretrained(model_dir)
        record = {}
        if (model_dir / "kanva.json").is_file():
            record = json.loads((model_dir / "kanva.json").read_text())
        try:
            processor = AutoProcessor.from_pretrained(model_dir)
        except (OSError, ValueError) as e:
            raise KanvaError(f"{model_dir}: cannot load the processor ({e})") from None
        template = recorded_template(record)
        if template is not None:
            processor.chat_template = processor.tokenizer.chat_template = template.jinja
        return cls(processor, image_aspect_ratio=record.get("image_aspect_ratio"),
                   end_of_turn=record.get("template", {}).get("end_of_turn"))

    # ---- images --------------------------------------------------------------------------------------
    def load_image(self, path: Path, sample_id: str | None = None, source: str | None = None) -> Image.Image:
        """Open and fully decode an image as RGB; missing or undecodable files are SampleErrors."""
        if not path.is_file():
            raise SampleError("missing_image", f"image {path} does not exist", source=source, sample_id=sample_id)
        try:
            with Image.open(path) as im:
                im.load()  # decode now: a truncated file fails here, not deep inside a batch
                return im.convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise SampleError("corrupt_image", f"image {path} cannot be decoded ({e})", source=source,
                              sample_id=sample_id) from None

    def load_video(self, path: Path, sample_id: str | None = None, source: str | None = None) -> Video:
        """Read a video file or frame folder, sampled to the model's frame count; failures are SampleErrors."""
        if self.max_frames is None:
            raise SampleError("video_tokens", f"video {path}: this model takes no video (an onevision model does)",
                              source=source, sample_id=sample_id)
        if not path.exists():
            raise SampleError("missing_video", f"video {path} does not exist", source=source, sample_id=sample_id)
        try:
            return read_video(path, self.max_frames)
        except VideoError as e:
            raise SampleError("video_unreadable", str(e), source=source, sample_id=sample_id) from None

    def pixel_values(self, images: list[Image.Image]) -> torch.Tensor | None:
        """[n, 3, H, W] for the images after `pad` or `resize`; None for no images."""
        if not images:
            return None
        prepared = []
        for im in images:
            im = as_rgb(im)
            if self.image_aspect_ratio == "pad":
                im = expand2square(im, self.pad_color)
            else:
                im = im.resize((self.image_size[1], self.image_size[0]), Image.Resampling.BICUBIC)
            prepared.append(im)
        return self.image_processor(images=prepared, return_tensors="pt")["pixel_values"]

    # ---- text ----------------------------------------------------------------------------------------
    def render(self, messages: list[dict], add_generation_prompt: bool) -> str:
        """The chat template applied to `messages` (role/content dicts), as text."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _tokenize(self, text: str) -> list[int]:
        # The template writes any BOS itself, so the tokenizer must not add one.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _expand(self, ids: list[int], labels: list[int], image_counts: list[int], video_counts: list[int]
                ) -> tuple[list[int], list[int]]:
        """Replace the k-th `<image>` id by image_counts[k] of them (unsupervised), `<video>` likewise.
        The caller has checked that the prompt holds as many of each as there are counts."""
        counts = {self.image_token_id: iter(image_counts), self.video_token_id: iter(video_counts)}
        out_ids: list[int] = []
        out_labels: list[int] = []
        for tok, lab in zip(ids, labels):
            if tok in counts and tok is not None:
                n = next(counts[tok])
                out_ids.extend([tok] * n)
                out_labels.extend([IGNORE] * n)
            else:
                out_ids.append(tok)
                out_labels.append(lab)
        return out_ids, out_labels

    def _media_tokens(self, ids: list[int]) -> tuple[int, int]:
        """(image placeholders, video placeholders) in unexpanded ids."""
        videos = ids.count(self.video_token_id) if self.video_token_id is not None else 0
        return ids.count(self.image_token_id), videos

    def _assistant_spans(self, messages: list[dict], full: str) -> list[tuple[int, int]]:
        """Character spans [start, end) of each assistant turn in `full`, end-of-turn marker included."""
        spans = []
        for k, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            before = self.render(messages[:k], add_generation_prompt=True)
            upto = self.render(messages[: k + 1], add_generation_prompt=False)
            if not (upto.startswith(before) and full.startswith(upto)):
                raise KanvaError("the chat template is not prefix-stable (rendering fewer messages does not give a "
                                 "prefix); cannot locate assistant turns")
            end = upto.rfind(self.end_of_turn)
            if end < len(before):
                raise KanvaError(f"the chat template does not close assistant turns with {self.end_of_turn!r}")
            spans.append((len(before), end + len(self.end_of_turn)))
        return spans

    def _chat_tokens(self, messages: list[dict]) -> tuple[list[int], list[int]]:
        full = self.render(messages, add_generation_prompt=False)
        # Tokenize prompt and answer segments separately, cut at the assistant-span boundaries: a token
        # can never straddle prompt and answer, and each prompt segment is tokenized exactly as the
        # generation prompt is at inference (which ends where the answer starts).
        segments: list[tuple[int, int, bool]] = []
        pos = 0
        for start, end in self._assistant_spans(messages, full):
            if start > pos:
                segments.append((pos, start, False))
            segments.append((start, end, True))
            pos = end
        if pos < len(full):
            segments.append((pos, len(full), False))
        ids: list[int] = []
        labels: list[int] = []
        for start, end, supervised in segments:
            seg = self._tokenize(full[start:end])
            ids += seg
            labels += seg if supervised else [IGNORE] * len(seg)
        return ids, labels

    def _plain_tokens(self, sample: dict, n_images: int, n_videos: int, source: str | None
                      ) -> tuple[list[int], list[int]]:
        conv = sample["conversations"]
        if len(conv) != 2:
            raise SampleError("roles", f"template 'plain' needs one human and one gpt turn, got {len(conv)} turns",
                              source=source, sample_id=str(sample["id"]))
        caption = self.tokenizer(conv[1]["value"], add_special_tokens=False).input_ids
        eos = self.tokenizer.eos_token_id
        prefix = [self.tokenizer.bos_token_id] if self.adds_bos else []
        media = [self.image_token_id] * n_images + [self.video_token_id] * n_videos
        ids = prefix + media + caption + [eos]
        labels = [IGNORE] * (len(prefix) + len(media)) + caption + [eos]
        return ids, labels

    def encode(self, sample: dict, image_root: str | Path | None = None, max_length: int | None = None,
               template: str = "chat", source: str | None = None, pixels: bool = True) -> Encoded:
        """Encode one LLaVA sample for training. Raises SampleError (reason + file + id) on bad input.

        `pixels=False` still opens and decodes every image (a missing or corrupt one is an error) but skips
        the image processor and returns `pixel_values=None`: the cheap check a trainer runs over a whole
        data set before training."""
        validate_sample(sample, source=source)
        sid = str(sample["id"])
        paths = sample_images(sample)
        video_path = sample.get("video")
        root = Path(image_root) if image_root is not None else Path(".")
        images = [self.load_image(root / p, sid, source) for p in paths]
        videos = [self.load_video(root / video_path, sid, source)] if video_path else []
        if template == "chat":
            messages = [{"role": "user" if t["from"] == "human" else "assistant", "content": t["value"]}
                        for t in sample["conversations"]]
            ids, labels = self._chat_tokens(messages)
        elif template == "plain":
            ids, labels = self._plain_tokens(sample, len(images), len(videos), source)
        else:
            raise KanvaError(f"template must be 'chat' or 'plain', got {template!r}")
        n_img, n_vid = self._media_tokens(ids)
        if n_img != len(images):
            raise SampleError("image_tokens", f"the prompt has {n_img} {IMAGE_TOKEN} tokens for {len(images)} "
                              "image(s)", source=source, sample_id=sid)
        if n_vid != len(videos):
            raise SampleError("video_tokens", f"the prompt has {n_vid} {VIDEO_TOKEN} tokens for {len(videos)} "
                              "video(s)", source=source, sample_id=sid)
        ids, labels = self._expand(ids, labels, self.image_token_counts([im.size[::-1] for im in images]),
                                   [self.video_token_count(v) for v in videos])

        truncated = 0
        if max_length is not None and len(ids) > max_length:
            tail = ids[max_length:]
            if self.image_token_id in tail or (self.video_token_id is not None and self.video_token_id in tail):
                raise SampleError("too_long", f"{len(ids)} tokens > max_length {max_length}, and truncating would "
                                  "cut an image or video", source=source, sample_id=sid)
            truncated = len(ids) - max_length
            ids, labels = ids[:max_length], labels[:max_length]
            if all(x == IGNORE for x in labels):
                raise SampleError("too_long", f"{len(ids) + truncated} tokens > max_length {max_length}, and "
                                  "truncating leaves no supervised token", source=source, sample_id=sid)

        vision = self.vision_inputs(images, videos) if pixels else {}
        return Encoded(ids, labels, vision.pop("pixel_values", None), sid, truncated, vision)

    # ---- generation ----------------------------------------------------------------------------------
    def encode_prompt(self, media: list[Image.Image | Video], messages: list[dict[str, Any]]
                      ) -> tuple[list[int], dict[str, torch.Tensor]]:
        """Prompt ids (ending with the generation prompt) and the model's vision inputs for (media, messages).

        `media` holds the row's images and videos (`Video`) in order. `<image>` / `<video>` in user messages
        (or typed `{"type": "image"}` / `{"type": "video"}` parts) mark where each goes; a kind that no message
        places is put at the front of the first user message, images before videos, as the chat template
        renders such parts (IMAGE_PLACE `<image>\n`, VIDEO_PLACE `<video>\n`): string and typed content with the
        same media and text give the same ids.
        """
        images = [m for m in media if not isinstance(m, Video)]
        videos = [m for m in media if isinstance(m, Video)]
        messages = [dict(m) for m in messages]
        front: list[str] = []
        for kind, place, items in (("image", IMAGE_PLACE, images), ("video", VIDEO_PLACE, videos)):
            if items and sum(_count_media(m.get("content"), kind) for m in messages) == 0:
                front += [place] * len(items)
        if front:
            first = next((m for m in messages if m.get("role") == "user"), None)
            if first is None:
                raise KanvaError("a prompt with images or videos needs a user message")
            if isinstance(first["content"], str):
                first["content"] = "".join(front) + first["content"]
            else:  # transformers' list-of-parts form; the template renders each part as its PLACE
                parts = [{"type": "image" if t == IMAGE_PLACE else "video"} for t in front]
                first["content"] = parts + list(first["content"])
        text = self.render(messages, add_generation_prompt=True)
        ids = self._tokenize(text)
        n_img, n_vid = self._media_tokens(ids)
        if n_img != len(images):
            raise KanvaError(f"the prompt has {n_img} {IMAGE_TOKEN} for {len(images)} image(s)")
        if n_vid != len(videos):
            raise KanvaError(f"the prompt has {n_vid} {VIDEO_TOKEN} for {len(videos)} video(s)")
        ids, _ = self._expand(ids, [IGNORE] * len(ids), self.image_token_counts([im.size[::-1] for im in images]),
                              [self.video_token_count(v) for v in videos])
        return ids, self.vision_inputs(images, videos)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)
