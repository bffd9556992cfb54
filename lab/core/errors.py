"""The lab's one exception type.

Every error a user can cause (bad audio, a missing folder, missing weights, a bad config value)
is raised as :class:`LabError` with one sentence that names the bad value and what is expected.
The entry point prints that sentence and exits non-zero instead of showing a traceback.
"""


class LabError(ValueError):
    """A user-facing error: the message is one sentence, shown without a traceback."""


# librosa's name for the same idea; audio helpers raise it so their messages read naturally.
ParameterError = LabError
