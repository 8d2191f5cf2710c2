"""The one exception type cnnlab shows users as a single line instead of a traceback."""


class CnnlabError(Exception):
    """A problem the user can fix (bad config, missing file, no data source reachable)."""
