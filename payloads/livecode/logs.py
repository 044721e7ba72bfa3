"""Live coding's loggers, made when live coding first logs.

The agent loads in the door's thread while a fork waits for that load
(door.py). logging's own fork hook takes logging's module lock, so a load
that imported logging, or asked it for a logger, while a fork was starting
waited for the fork, and the fork for the load: 5 s later the fork went on
and the child had lu's modules half imported. So the load never touches
logging; a watch or a @realtime function imports it when it first logs,
after the load.
"""

TYPE_CHECKING = False  # true for type checkers only
if TYPE_CHECKING:
    import logging

WATCH = "lu_payloads.watch"
REALTIME = "lu_payloads.realtime"


def logger(name: str) -> "logging.Logger":
    """logging.getLogger(name), importing logging now if the program has not (see the docstring)."""
    import logging  # lazy: never while the agent loads

    return logging.getLogger(name)
