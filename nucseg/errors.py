"""The errors that name a bad input and what to do about it. The CLI prints them without a
traceback: `InputError` exits 2, `TrainingDiverged` exits 3."""


class InputError(ValueError):
    """A file, folder, option or configuration that cannot be used; the message says which and why."""


class ModelLoadError(InputError):
    """A model file or folder that cannot be loaded."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""
