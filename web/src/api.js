// The service's public API, called with the tenant key kept in sessionStorage (this tab only, never localStorage
// or a cookie: closing the tab forgets it).
const KEY = "claude-history-key";

export const auth = {
  get: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(extra = {}) {
  const key = auth.get();
  const result = { ...extra };
  if (key) result["x-api-key"] = key;
  return result;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message);
}

export async function call(method, path, body, { signal, raw = false } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { "content-type": "application/json" }), signal };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const api = {
  list: (params) => call("GET", `/v1/sessions?${new URLSearchParams(params)}`),
  create: (body) => call("POST", "/v1/sessions", body),
  get: (id) => call("GET", `/v1/sessions/${encodeURIComponent(id)}`),
  update: (id, body) => call("PATCH", `/v1/sessions/${encodeURIComponent(id)}`, body),
  remove: (id) => call("DELETE", `/v1/sessions/${encodeURIComponent(id)}`),
  messages: async (id) => {
    const all = [];
    let version = 0;
    let cursor = null;
    for (;;) {
      const params = new URLSearchParams({ limit: "1000" });
      if (cursor) params.set("cursor", cursor);
      const page = await call("GET", `/v1/sessions/${encodeURIComponent(id)}/messages?${params}`);
      all.push(...page.data);
      version = page.version;
      if (!page.has_more) break;
      cursor = page.next_cursor;
    }
    return { messages: all, version };
  },
  send: (id, body, signal) =>
    call("POST", `/v1/sessions/${encodeURIComponent(id)}/messages`, body, { signal, raw: true }),
  undo: (id) => call("POST", `/v1/sessions/${encodeURIComponent(id)}/undo`, {}),
  fork: (id, at) => call("POST", `/v1/sessions/${encodeURIComponent(id)}/fork`, { at }),
  repair: (id) => call("POST", `/v1/sessions/${encodeURIComponent(id)}/repair`, {}),
  context: (id) => call("GET", `/v1/sessions/${encodeURIComponent(id)}/context?detail=true`),
  costs: (id) => call("GET", `/v1/sessions/${encodeURIComponent(id)}/costs`),
  search: (q) => call("GET", `/v1/search?${new URLSearchParams({ q, limit: "50" })}`),
  exportText: async (id, format) => {
    const response = await call("GET", `/v1/sessions/${encodeURIComponent(id)}/export?format=${format}`, undefined,
      { raw: true });
    return response.text();
  },
};
