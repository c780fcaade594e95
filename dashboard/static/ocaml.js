// A small tokenizer-based OCaml highlighter.  It returns DOM nodes built with
// textContent only, so model-written code can never be interpreted as HTML.

const KEYWORDS = new Set(
  ("and as assert begin class constraint do done downto else end exception external false for fun function " +
    "functor if in include inherit initializer lazy let match method module mutable new nonrec object of open " +
    "private rec sig struct then to true try type val virtual when while with lor lsl lsr asr land lxor mod or")
    .split(" "),
);

/**
 * Split OCaml source into [class, text] tokens.  Classes: kw, str, num, com, mod, op, tv,
 * fence (markdown ``` lines), or "" for plain text.  Nested comments, quoted strings
 * {id|...|id}, character literals and type variables are recognised.
 */
export function tokenize(src) {
  const out = [];
  const n = src.length;
  let i = 0;
  let plain = "";
  const flush = () => { if (plain) { out.push(["", plain]); plain = ""; } };
  const push = (cls, text) => { flush(); out.push([cls, text]); };
  const isIdStart = (c) => /[A-Za-z_]/.test(c);
  const isId = (c) => /[A-Za-z0-9_']/.test(c);
  while (i < n) {
    const c = src[i];
    // markdown fence line
    if ((i === 0 || src[i - 1] === "\n") && src.startsWith("```", i)) {
      let j = src.indexOf("\n", i);
      if (j < 0) j = n;
      push("fence", src.slice(i, j));
      i = j;
      continue;
    }
    if (c === "(" && src[i + 1] === "*" && src[i + 2] !== ")") {
      let depth = 0, j = i;
      while (j < n) {
        if (src[j] === "(" && src[j + 1] === "*") { depth++; j += 2; continue; }
        if (src[j] === "*" && src[j + 1] === ")") { depth--; j += 2; if (depth === 0) break; continue; }
        if (src[j] === '"') { j++; while (j < n && src[j] !== '"') { if (src[j] === "\\") j++; j++; } j++; continue; }
        j++;
      }
      push("com", src.slice(i, Math.min(j, n)));
      i = Math.min(j, n);
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < n && src[j] !== '"') { if (src[j] === "\\") j++; j++; }
      push("str", src.slice(i, Math.min(j + 1, n)));
      i = Math.min(j + 1, n);
      continue;
    }
    if (c === "{") {
      const m = /^\{([a-z_]*)\|/.exec(src.slice(i, i + 40));
      if (m) {
        const close = `|${m[1]}}`;
        let j = src.indexOf(close, i + m[0].length);
        j = j < 0 ? n : j + close.length;
        push("str", src.slice(i, j));
        i = j;
        continue;
      }
    }
    if (c === "'") {
      const m = /^'(?:\\(?:[\\'"ntbr ]|[0-9]{3}|x[0-9a-fA-F]{2}|o[0-7]{3})|[^\\'\n])'/.exec(src.slice(i, i + 8));
      if (m) { push("str", m[0]); i += m[0].length; continue; }
      const tv = /^'[a-z_][A-Za-z0-9_']*/.exec(src.slice(i, i + 40));
      if (tv && !isId(src[i - 1] || " ")) { push("tv", tv[0]); i += tv[0].length; continue; }
    }
    if (/[0-9]/.test(c) && !isId(src[i - 1] || " ")) {
      const m = /^(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?)[lLn]?/.exec(src.slice(i, i + 64));
      push("num", m[0]);
      i += m[0].length;
      continue;
    }
    if (isIdStart(c)) {
      let j = i + 1;
      while (j < n && isId(src[j])) j++;
      const word = src.slice(i, j);
      if (KEYWORDS.has(word)) push("kw", word);
      else if (/[A-Z]/.test(c)) push("mod", word);
      else plain += word;
      i = j;
      continue;
    }
    if ("=<>@^|&+-*/$%!?~.:;#".includes(c)) {
      let j = i + 1;
      while (j < n && "=<>@^|&+-*/$%!?~.:".includes(src[j]) && !(src[j] === "*" && src[j + 1] === ")")) j++;
      push("op", src.slice(i, j));
      i = j;
      continue;
    }
    plain += c;
    i++;
  }
  flush();
  return out;
}

/** Highlight `src` into `target` (cleared first); spans get class tk-<kind>. */
export function highlightInto(target, src) {
  while (target.firstChild) target.removeChild(target.firstChild);
  if (typeof src !== "string") return target;
  const frag = document.createDocumentFragment();
  for (const [cls, text] of tokenize(src)) {
    if (!cls) frag.append(document.createTextNode(text));
    else {
      const span = document.createElement("span");
      span.className = "tk-" + cls;
      span.textContent = text;
      frag.append(span);
    }
  }
  target.append(frag);
  return target;
}
