"""A worker's own check of ``--max-worker-memory``, between the arbiter's samples.

Between two of the arbiter's once-a-second samples (:mod:`prefork.arbiter.recycling`) a worker
can grow by whatever its requests allocate (an app that kept 20 MB a request was retired near
700 MB under a 200 MB limit). So the worker also checks itself after requests and retires at
once, as for max-requests, on a reading over its limit: reading its RSS is a syscall, so it reads
after a request only when the growth seen so far could have brought it to the limit since the
last reading, and at least every ``CHECK_EVERY_MAX`` requests otherwise.

Rule: this module is pure; the worker passes each reading in.
"""

from __future__ import annotations

from prefork.system.procstat import MIB

CHECK_EVERY_MAX = 64  # requests between two of a worker's own readings, at most


class RequestMemoryCheck:
    """A worker's own check of ``--max-worker-memory`` after its requests.

    :meth:`due` says whether to read the RSS after the request numbered ``requests``;
    :meth:`review` takes that reading and returns the reason to retire, or None. The next
    reading is planned from the largest growth per request seen between two readings: half the
    requests that growth needs to cross the limit (at least the next request, at most
    ``CHECK_EVERY_MAX`` on), so a worker that grows fast is read after every request as it
    nears its limit, and one that does not is read every 64 requests.
    """

    __slots__ = ("_growth", "_last_requests", "_last_rss", "_next", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit  # bytes, with this worker's jitter
        self._next = 1
        self._last_rss = 0
        self._last_requests = 0
        self._growth = 0  # the largest growth per request seen, bytes

    def due(self, requests: int) -> bool:
        return requests >= self._next

    def review(self, rss: int, requests: int) -> str | None:
        first = not self._last_requests
        if not first and requests > self._last_requests and rss > self._last_rss:
            growth = (rss - self._last_rss) // (requests - self._last_requests)
            self._growth = max(self._growth, growth)
        self._last_rss, self._last_requests = rss, requests
        if rss > self.limit:
            return (f"RSS {rss / MIB:.0f} MB over {self.limit / MIB:.0f} MB after request "
                    f"{requests} (max-worker-memory)")
        if first:
            self._next = requests + 1  # a second reading gives the first growth
            return None
        headroom = self.limit - rss
        steps = headroom // (2 * self._growth) if self._growth else CHECK_EVERY_MAX
        self._next = requests + max(1, min(CHECK_EVERY_MAX, steps))
        return None
