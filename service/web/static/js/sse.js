// A parser for text/event-stream (the Server-Sent Events wire format of the HTML standard),
// for streams read with fetch: EventSource cannot send an Authorization header.

export class EventStreamParser {
  #buffer = "";
  #event = "";
  #data = [];
  #id = "";

  /** Feed decoded text; returns the events completed by it, as {event, data, id}. */
  push(text) {
    this.#buffer += text;
    const events = [];
    const buffer = this.#buffer;
    let start = 0;
    for (let index = 0; index < buffer.length; index += 1) {
      const char = buffer[index];
      if (char !== "\n" && char !== "\r") continue;
      // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
      if (char === "\r" && index + 1 === buffer.length) break;
      this.#line(buffer.slice(start, index), events);
      if (char === "\r" && buffer[index + 1] === "\n") index += 1;
      start = index + 1;
    }
    this.#buffer = buffer.slice(start);
    return events;
  }

  #line(line, events) {
    if (line === "") {
      if (this.#data.length > 0) {
        events.push({ event: this.#event || "message", data: this.#data.join("\n"), id: this.#id });
      }
      this.#event = "";
      this.#data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.#event = value;
    else if (field === "data") this.#data.push(value);
    else if (field === "id") this.#id = value;
  }
}
