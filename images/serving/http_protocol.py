"""uvicorn's HTTP/1.1 protocol with read timeouts, so stalled clients cannot hold connections.

uvicorn times out idle keep-alive connections only: a client that connects and sends half a
request line, or headers and half a body, is kept for ever, and on shutdown it holds the server for
the whole grace period and then gets a 500.  Here:

* the request line and headers must arrive within ``read_timeout_s`` of the connection opening
  (or of the previous response), and the body within ``read_timeout_s`` of the headers; a client
  that is too slow gets ``408 Request Timeout`` and the connection is closed;
* on shutdown, connections still sending a request are answered 503 and closed at once, while
  requests already received run to their end.
"""
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_READ_TIMEOUT_S = 30.0


def _raw_response(status, reason, message):
    body = json.dumps({"error": message}).encode()
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n" % (status, reason, len(body))) + body


class TimedH11Protocol(H11Protocol):
    """``H11Protocol`` that drops clients too slow to send their request (see module doc)."""

    read_timeout_s = DEFAULT_READ_TIMEOUT_S

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._read_timer = None

    @classmethod
    def with_timeout(cls, seconds: float):
        """A subclass whose read timeout is ``seconds`` (passed as uvicorn's ``http``)."""
        return type("TimedH11Protocol%d" % int(seconds * 1000), (cls,),
                    {"read_timeout_s": float(seconds)})

    def _arm(self):
        self._disarm()
        if self.read_timeout_s > 0:
            self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm(self):
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc):
        self._disarm()
        super().connection_lost(exc)

    def _receiving_body(self):
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete and cycle.more_body

    def handle_events(self):
        before = self.cycle
        super().handle_events()
        if self.transport.is_closing():
            self._disarm()
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if not cycle.more_body:
                self._disarm()  # the whole request is in: the model may take its time
            elif cycle is not before:
                self._arm()  # headers in: the body has its own allowance

    def on_response_complete(self):
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def _drop(self, status, reason, message):
        self._disarm()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if not cycle.response_started:
                self.transport.write(_raw_response(status, reason, message))
            # The application, waiting for the rest of the body, sees a disconnect and stops.
            cycle.disconnected = True
            cycle.message_event.set()
        elif self.conn.their_state in (h11.SEND_BODY, h11.IDLE) and self.conn.our_state in (
                h11.IDLE, h11.SEND_RESPONSE) and self._partial_request():
            self.transport.write(_raw_response(status, reason, message))
        self.transport.close()

    def _partial_request(self):
        try:
            return bool(self.conn.trailing_data[0])
        except (AttributeError, IndexError, TypeError):
            return False

    def _read_timed_out(self):
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete \
                and not self.cycle.more_body:
            return  # the request is in and being answered
        self._drop(408, b"Request Timeout",
                   "the request was not received within %g s (--rest_api_read_timeout_in_ms); "
                   "the connection is closed" % self.read_timeout_s)

    def shutdown(self):
        if self._receiving_body():
            self._drop(503, b"Service Unavailable",
                       "the server is shutting down; send the request to another server")
            return
        super().shutdown()
