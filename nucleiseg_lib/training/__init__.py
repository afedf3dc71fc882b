"""Training: the loop, checkpoints (atomic), exact resume, and recipes."""

from .checkpoint import build_model, load_checkpoint, save_checkpoint, save_json
from .data import TrainData
from .losses import segmentation_loss, soft_dice_loss
from .recipes import RECIPES, TrainConfig, get_recipe, make_model
from .trainer import Trainer, pick_device

__all__ = ["build_model", "load_checkpoint", "save_checkpoint", "save_json", "segmentation_loss", "soft_dice_loss",
           "RECIPES", "TrainConfig", "get_recipe", "make_model", "Trainer", "TrainData", "pick_device"]
