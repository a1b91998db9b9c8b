"""The `onevision` architecture: LLaVA-OneVision on transformers' LlavaOnevision classes.

transformers does the OneVision work: `LlavaOnevisionImageProcessor` cuts a single image into AnyRes crops
plus a base view (a multi-image sample gets base views only), `LlavaOnevisionForConditionalGeneration`
unpads the crops' features, interpolates them down to the `anyres_max_N` budget, adds a newline feature
per row and pools each video frame's features 2x2, and `LlavaOnevisionProcessor` says how many tokens each
image and video becomes. Kanva only assembles the parts, saves a stock checkpoint, and asks the processor
for its token counts (`image_token_counts`, `video_token_count`) so the training encoder expands each
`<image>` / `<video>` exactly as transformers would.

torchvision: transformers' video processor (and so `LlavaOnevisionProcessor`, which always holds one) needs
it; its CPU build is not installable everywhere (this project's machines have none). So the processor files
are written as `save_pretrained` writes them (`AutoProcessor` loads them wherever torchvision is installed),
and without torchvision kanva builds the same `LlavaOnevisionProcessor` from its saved parts, with video
frames preprocessed by the PIL image processor that does the video processor's steps (resize to the
encoder's square, bicubic; rescale; normalize with the same mean and std).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from kanva.data.llava import IMAGE_TOKEN, VIDEO_TOKEN
from kanva.errors import KanvaError
from kanva.model.presets import ModelSpec
from kanva.model.processor import KanvaProcessor, as_rgb
from kanva.model.video import Video

PROCESSOR_FILE = "processor_config.json"  # transformers' name; sub-processors are nested in it


def default_pinpoints(image_size: int, max_grid: int = 6) -> list[list[int]]:
    """LLaVA-OneVision's grids: 1..6 x 1..6 crops of the encoder's input size, as (height, width) pixels."""
    return [[image_size * h, image_size * w] for h in range(1, max_grid + 1) for w in range(1, max_grid + 1)]


def _check_pinpoints(pinpoints: list[list[int]], image_size: int) -> None:
    for p in pinpoints:
        if len(p) != 2 or any(not isinstance(x, int) or x < image_size or x % image_size for x in p):
            raise KanvaError(f"image_grid_pinpoints: {p} is not a (height, width) pair of multiples of the "
                             f"encoder's image size {image_size}")


def assemble_onevision(spec: ModelSpec, vision, lm, tokenizer, image_processor, chat_template: str,
                       feature_layer: int, strategy: str, num_image_tokens: int):
    """(LlavaOnevisionForConditionalGeneration, processor files writer, record extras) from built parts."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )
    from transformers.models.llava_onevision.modeling_llava_onevision import LlavaOnevisionMultiModalProjector

    from kanva.model.build import install_parts

    if spec.projector != "mlp2x_gelu":
        raise KanvaError("architecture 'onevision' uses the mlp2x_gelu projector (LlavaOnevisionMultiModalProjector)")
    vcfg = vision.config
    grid = vcfg.image_size // vcfg.patch_size
    if grid * grid != num_image_tokens:
        raise KanvaError(f"architecture 'onevision' needs a SigLIP-style encoder (no CLS token, strategy 'full'); "
                         f"{spec.vision or 'vision_config'} gives {num_image_tokens} tokens for a {grid}x{grid} grid")
    pinpoints = spec.image_grid_pinpoints or default_pinpoints(vcfg.image_size)
    _check_pinpoints(pinpoints, vcfg.image_size)
    config = LlavaOnevisionConfig(
        vision_config=vcfg.to_dict(),
        text_config=lm.config.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        video_token_index=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        projector_hidden_act="gelu",
        vision_feature_select_strategy=strategy,
        vision_feature_layer=feature_layer,
        image_grid_pinpoints=pinpoints,
        vision_aspect_ratio=spec.vision_aspect_ratio,
        tie_word_embeddings=bool(lm.config.tie_word_embeddings),
    )
    lm.config.architectures = lm.config.architectures or [type(lm).__name__]  # vLLM builds the LM from it
    model = install_parts(LlavaOnevisionForConditionalGeneration, config, vision, lm,
                          LlavaOnevisionMultiModalProjector)
    hidden = lm.config.hidden_size
    # transformers' own init of the newline feature: N(0, 1/hidden), here from the seeded RNG
    model.model.image_newline = torch.nn.Parameter(torch.randn(hidden) * hidden**-0.5)

    size = {"height": vcfg.image_size, "width": vcfg.image_size}
    mean = list(getattr(image_processor, "image_mean", None) or [0.5] * 3)
    std = list(getattr(image_processor, "image_std", None) or [0.5] * 3)
    images = LlavaOnevisionImageProcessorPil(size=size, image_grid_pinpoints=pinpoints, image_mean=mean, image_std=std)
    files = ProcessorFiles(images, tokenizer, chat_template, {
        "num_image_tokens": num_image_tokens,
        "vision_feature_select_strategy": strategy,
        "vision_aspect_ratio": spec.vision_aspect_ratio,
        "image_token": IMAGE_TOKEN,
        "video_token": VIDEO_TOKEN,
    }, video_processor_dict(size, mean, std, spec.max_frames))
    pooled = math.ceil(grid / 2) ** 2
    return model, files, {"max_frames": spec.max_frames, "video_tokens_per_frame": pooled,
                          "image_grid_pinpoints": pinpoints, "vision_aspect_ratio": spec.vision_aspect_ratio}


def video_processor_dict(size: dict, mean: list[float], std: list[float], num_frames: int) -> dict[str, Any]:
    """LlavaOnevisionVideoProcessor's saved settings: each frame resized to the encoder's square (bicubic),
    rescaled and normalized like the images."""
    return {
        "video_processor_type": "LlavaOnevisionVideoProcessor",
        "size": dict(size), "resample": 3, "do_resize": True, "default_to_square": False,
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": mean, "image_std": std,
        "do_convert_rgb": True, "do_sample_frames": False, "num_frames": num_frames,
    }  # fmt: skip


class ProcessorFiles:
    """Writes a LlavaOnevisionProcessor's files (`save_pretrained`'s layout) from its parts, so a model can be
    saved where transformers cannot instantiate the processor (no torchvision)."""

    def __init__(self, image_processor, tokenizer, chat_template: str, settings: dict, video: dict):
        self.image_processor, self.tokenizer = image_processor, tokenizer
        self.chat_template, self.settings, self.video = chat_template, settings, video

    def save_pretrained(self, out: str | Path) -> None:
        out = Path(out)
        self.tokenizer.save_pretrained(out)
        record = {
            "image_processor": self.image_processor.to_dict(),
            "video_processor": self.video,
            "processor_class": "LlavaOnevisionProcessor",
            **self.settings,
        }
        (out / PROCESSOR_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=_json) + "\n")
        (out / "chat_template.jinja").write_text(self.chat_template)


def _json(value):
    if hasattr(value, "value"):  # enums (PILImageResampling)
        return value.value
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def load_processor(model_dir: Path):
    """The saved LlavaOnevisionProcessor: `AutoProcessor` where torchvision is installed, else the same class
    built from its saved parts with no video processor (see the module docstring)."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer, LlavaOnevisionProcessor
    from transformers.utils import is_torchvision_available

    if is_torchvision_available():
        return AutoProcessor.from_pretrained(model_dir)
    record = json.loads((model_dir / PROCESSOR_FILE).read_text())
    proc = LlavaOnevisionProcessor.__new__(LlavaOnevisionProcessor)  # __init__ insists on a video processor
    proc.image_processor = AutoImageProcessor.from_pretrained(model_dir)
    proc.tokenizer = AutoTokenizer.from_pretrained(model_dir)
    proc.video_processor = None
    proc.chat_template = proc.tokenizer.chat_template
    proc.num_image_tokens = record["num_image_tokens"]
    proc.vision_feature_select_strategy = record["vision_feature_select_strategy"]
    proc.vision_aspect_ratio = record.get("vision_aspect_ratio", "anyres_max_9")
    proc.image_token = record.get("image_token", IMAGE_TOKEN)
    proc.video_token = record.get("video_token", VIDEO_TOKEN)
    proc.image_token_id = proc.tokenizer.convert_tokens_to_ids(proc.image_token)
    proc.video_token_id = proc.tokenizer.convert_tokens_to_ids(proc.video_token)
    proc.video_settings = record.get("video_processor", {})
    return proc


class OnevisionProcessor(KanvaProcessor):
    """KanvaProcessor for LlavaOnevision models: per-image token counts from transformers' processor,
    AnyRes pixel values, video frames."""

    architecture = "onevision"

    def __init__(self, processor, max_frames: int, end_of_turn: str | None = None, model_dir: Path | None = None):
        self.model_dir = model_dir
        super().__init__(processor, end_of_turn=end_of_turn)
        self.max_frames = max_frames
        self._frames = processor.video_processor or _frame_processor(getattr(processor, "video_settings", {}))

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> OnevisionProcessor:
        model_dir = Path(model_dir)
        record = json.loads((model_dir / "kanva.json").read_text()) if (model_dir / "kanva.json").is_file() else {}
        try:
            processor = load_processor(model_dir)
        except (OSError, ValueError, KeyError) as e:
            raise KanvaError(f"{model_dir}: cannot load the processor ({e})") from None
        frames = record.get("max_frames") or getattr(processor, "video_settings", {}).get("num_frames") or 32
        return cls(processor, int(frames), record.get("template", {}).get("end_of_turn"), model_dir)

    def _measure(self) -> tuple[tuple[int, int], int]:
        """The base view's size and tokens (the processor's num_image_tokens: a SigLIP grid, no CLS)."""
        size = self.image_processor.size
        hw = (size["height"], size["width"]) if isinstance(size, dict) else (size.height, size.width)
        return hw, int(self.processor.num_image_tokens)

    def image_token_counts(self, sizes: list[tuple[int, int]]) -> list[int]:
        """transformers' own count per image (`replace_image_token`): AnyRes for a single image, the base
        view + newline for each image of a multi-image sample."""
        h, w = self.image_size
        inputs = {"batch_num_images": [len(sizes)], "image_sizes": [list(s) for s in sizes],
                  "pixel_values": [[torch.empty(3, h, w)]]}
        return [len(self.processor.replace_image_token(inputs, i)) // len(self.processor.image_token)
                for i in range(len(sizes))]

    def video_token_count(self, video: Video) -> int:
        inputs = {"pixel_values_videos": [[None] * len(video.frames)]}
        return len(self.processor.replace_video_token(inputs, 0)) // len(self.processor.video_token)

    def vision_inputs(self, images: list[Image.Image], videos: list[Video]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if images:  # one sample: [[...]] tells the image processor how many images it holds
            enc = self.image_processor(images=[[as_rgb(im) for im in images]], return_tensors="pt")
            out.update(pixel_values=enc["pixel_values"], image_sizes=enc["image_sizes"],
                       batch_num_images=torch.tensor([len(images)]))
        if videos:
            out["pixel_values_videos"] = torch.stack([self.video_pixels(v) for v in videos])
        return out

    def video_pixels(self, video: Video) -> torch.Tensor:
        """[frames, 3, H, W] for one video."""
        if self.processor.video_processor is not None:
            return self.processor.video_processor(videos=[video.frames], return_tensors="pt")["pixel_values_videos"][0]
        return self._frames(images=video.frames, return_tensors="pt")["pixel_values"]

    def save_pretrained(self, out_dir: str | Path) -> None:
        """Copy the processor files as saved (the parts may not be re-savable without torchvision)."""
        import shutil

        if self.model_dir is None:
            raise KanvaError("this processor was not loaded from a model directory")
        for name in (PROCESSOR_FILE, "chat_template.jinja", "tokenizer.json", "tokenizer_config.json",
                     "special_tokens_map.json", "vocab.json", "merges.txt", "added_tokens.json"):
            if (self.model_dir / name).is_file():
                shutil.copy2(self.model_dir / name, Path(out_dir) / name)


def _frame_processor(settings: dict):
    """The video processor's per-frame steps with the PIL backend (SigLIP's processor: resize to size,
    rescale, normalize), for machines without torchvision."""
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    size = settings.get("size") or {"height": 384, "width": 384}
    return SiglipImageProcessorPil(size=size, resample=settings.get("resample", 3),
                                   image_mean=settings.get("image_mean", [0.5] * 3),
                                   image_std=settings.get("image_std", [0.5] * 3),
                                   rescale_factor=settings.get("rescale_factor", 1 / 255))
