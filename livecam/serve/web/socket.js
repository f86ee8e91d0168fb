// The WebSocket to the server: one connection at a time, reopened on its own after the server
// goes away (with a growing delay), and at most one camera frame in flight on it.

export class Connection {
  // url: the WebSocket's address (with the token). handlers: {open(), message(object), closed(seconds)},
  // closed is awaited before reconnecting (the page reloads its config then).
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.reconnectDelay = 500;
    this.inFlight = false; // a camera frame sent, its answer not back yet
    this.sentAt = 0; // when that frame was captured
  }

  get open() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  connect() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.inFlight = false;
    ws.onopen = () => {
      this.reconnectDelay = 500;
      this.handlers.open();
    };
    ws.onmessage = (event) => this.handlers.message(JSON.parse(event.data));
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.inFlight = false;
      const delay = this.reconnectDelay;
      this.reconnectDelay = Math.min(5000, delay * 2);
      this.handlers.closed(delay / 1000);
      setTimeout(async () => {
        await this.handlers.reconnecting();
        this.connect();
      }, delay);
    };
  }

  send(data) {
    if (this.open) this.ws.send(data);
  }

  sendControls(controls) {
    this.send(JSON.stringify(controls));
  }

  // One camera frame: `blob` resolves to its JPEG (or null), captured at `capturedAt`.
  sendFrame(blob, capturedAt) {
    this.inFlight = true;
    blob.then((data) => {
      if (!data || !this.open) {
        this.inFlight = false;
        return;
      }
      this.sentAt = capturedAt;
      this.ws.send(data);
    });
  }
}
