"""Loading, checking, splitting and preprocessing a user's labelled data."""

from graft.data.dataset import TASKS, DataSplits, LabelledData, Task
from graft.data.sources import load_data, load_inputs, load_splits
from graft.data.split import random_split, stratified_split, train_val_split

__all__ = [
    "TASKS",
    "DataSplits",
    "LabelledData",
    "load_data",
    "load_inputs",
    "load_splits",
    "random_split",
    "stratified_split",
    "Task",
    "train_val_split",
]
