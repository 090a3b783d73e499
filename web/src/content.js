// Rendering stored content blocks to DOM. Markdown goes through marked, then DOMPurify (a `<script>` or an
// `onerror=` written by a user or a model never runs), then highlight.js on code blocks. Everything else is
// put in as text, never as HTML.
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/common";
import { marked } from "marked";

marked.setOptions({ gfm: true, breaks: false });

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function markdown(text) {
  const box = el("div", { class: "markdown" });
  const html = marked.parse(text || "", { async: false });
  box.innerHTML = DOMPurify.sanitize(html, { FORBID_TAGS: ["style", "form", "input", "button", "textarea"],
    FORBID_ATTR: ["style"] });
  for (const code of box.querySelectorAll("pre code")) {
    const language = [...code.classList].find((c) => c.startsWith("language-"));
    if (language && !hljs.getLanguage(language.slice(9))) code.classList.remove(language);
    hljs.highlightElement(code);
  }
  return box;
}

function json(value) {
  const code = el("code", { class: "language-json", text: JSON.stringify(value, null, 2) });
  hljs.highlightElement(code);
  return el("pre", {}, code);
}

function folded(kind, title, ...body) {
  return el("details", { class: `block ${kind}` }, el("summary", { text: title }), ...body);
}

function resultText(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((b) => (b.type === "text" ? b.text : `[${b.type}]`)).join("\n");
}

function image(block) {
  const source = block.source || {};
  if (source.type === "base64" && /^image\/(png|jpeg|gif|webp)$/.test(source.media_type || "")) {
    return el("img", { class: "attached-image", src: `data:${source.media_type};base64,${source.data}`,
      alt: "attached image" });
  }
  return el("div", { class: "chip", text: `image (${source.type || "unknown source"})` });
}

function documentChip(block) {
  const source = block.source || {};
  const name = block.title || (source.media_type === "application/pdf" ? "PDF document" : "document");
  return el("div", { class: "chip document", text: `Document: ${name}` });
}

export function renderBlock(block) {
  switch (block.type) {
    case "text":
      return markdown(block.text);
    case "thinking":
      return folded("thinking", "Thinking", el("div", { class: "thinking-text", text: block.thinking || "" }));
    case "redacted_thinking":
      return folded("thinking", "Thinking (redacted)");
    case "tool_use":
    case "server_tool_use":
      return folded("tool-use", `Tool call: ${block.name}`, json(block.input ?? {}));
    case "tool_result":
      return folded(block.is_error ? "tool-result error" : "tool-result",
        block.is_error ? "Tool result (error)" : "Tool result", el("pre", { text: resultText(block.content) }));
    case "image":
      return image(block);
    case "document":
      return documentChip(block);
    default:
      return folded("other", block.type, json(block));
  }
}

export function renderContent(content) {
  const box = el("div", { class: "content" });
  if (typeof content === "string") box.append(markdown(content));
  else if (Array.isArray(content)) for (const block of content) if (block) box.append(renderBlock(block));
  return box;
}

export function plainText(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.filter((b) => b.type === "text").map((b) => b.text).join("\n");
}
