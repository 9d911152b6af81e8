// Small DOM helpers: elements are built with text nodes, never from HTML strings.

/**
 * Create an element. `attrs` keys: `class`, `text`, `on<event>` handlers, `dataset`,
 * anything else becomes an attribute (`false`/`null`/`undefined` leave it out).
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace every child of `element`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** Show `text` in an element, hiding it when there is none. */
export function say(element, text) {
  element.textContent = text || "";
  element.hidden = !text;
}

/** A status badge: the status word, coloured by a class. */
export function badge(status) {
  return h("span", { class: `badge badge-${status}`, text: status });
}

let counter = 0;

/** An id unique in this page. */
export function uniqueId(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}
