/**
 * A strict XML well-formedness check (XML 1.0 subset that SVG files use: declaration,
 * comments, elements, attributes, character and predefined entity references, CDATA). The
 * suite checks every SVG it writes with it (and with xmllint when installed); the test uses it
 * too. Returns null when well formed, else the first problem with its offset.
 */
const NAME = /^[A-Za-z_:][-A-Za-z0-9_:.]*/;
const ENTITY = /^&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9A-Fa-f]+);/;

export function xmlProblem(text: string): string | null {
  let i = 0;
  const stack: string[] = [];
  let rootSeen = false;
  const fail = (what: string): string => `offset ${i}: ${what}`;
  const checkText = (s: string, at: number): string | null => {
    for (let k = 0; k < s.length; k++) {
      const c = s[k]!;
      if (c === '<') return `offset ${at + k}: '<' in text`;
      if (c === '&' && !ENTITY.test(s.slice(k))) return `offset ${at + k}: bad entity reference`;
      const code = s.charCodeAt(k);
      if (code < 0x20 && c !== '\n' && c !== '\r' && c !== '\t') return `offset ${at + k}: control character ${code}`;
    }
    return null;
  };
  if (text.startsWith('<?xml')) {
    const end = text.indexOf('?>');
    if (end < 0) return fail('unterminated XML declaration');
    i = end + 2;
  }
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    const chunk = lt < 0 ? text.slice(i) : text.slice(i, lt);
    if (stack.length === 0) {
      if (chunk.trim() !== '') return fail('text outside the root element');
    } else {
      const p = checkText(chunk, i);
      if (p) return p;
    }
    if (lt < 0) break;
    i = lt;
    if (text.startsWith('<!--', i)) {
      const end = text.indexOf('-->', i + 4);
      if (end < 0) return fail('unterminated comment');
      if (text.slice(i + 4, end).includes('--')) return fail("'--' inside a comment");
      i = end + 3;
      continue;
    }
    if (text.startsWith('<![CDATA[', i)) {
      if (stack.length === 0) return fail('CDATA outside the root element');
      const end = text.indexOf(']]>', i);
      if (end < 0) return fail('unterminated CDATA');
      i = end + 3;
      continue;
    }
    if (text.startsWith('<?', i)) {
      const end = text.indexOf('?>', i);
      if (end < 0) return fail('unterminated processing instruction');
      i = end + 2;
      continue;
    }
    if (text.startsWith('<!', i)) return fail('DOCTYPE or declaration not supported');
    if (text.startsWith('</', i)) {
      const m = NAME.exec(text.slice(i + 2));
      if (!m) return fail('bad end tag');
      const name = m[0];
      let j = i + 2 + name.length;
      while (/\s/.test(text[j] ?? '')) j++;
      if (text[j] !== '>') return fail(`bad end tag </${name}`);
      const open = stack.pop();
      if (open !== name) return fail(`</${name}> closes <${open ?? 'nothing'}>`);
      i = j + 1;
      continue;
    }
    // Start tag.
    const m = NAME.exec(text.slice(i + 1));
    if (!m) return fail('bad start tag');
    const name = m[0];
    if (stack.length === 0) {
      if (rootSeen) return fail('a second root element');
      rootSeen = true;
    }
    let j = i + 1 + name.length;
    const seen = new Set<string>();
    for (;;) {
      const ws0 = j;
      while (/\s/.test(text[j] ?? '')) j++;
      if (text[j] === '>') {
        stack.push(name);
        j++;
        break;
      }
      if (text[j] === '/' && text[j + 1] === '>') {
        j += 2;
        break;
      }
      if (j === ws0) return fail(`<${name}>: expected whitespace, '>' or '/>'`);
      const a = NAME.exec(text.slice(j));
      if (!a) return fail(`<${name}>: bad attribute`);
      if (seen.has(a[0])) return fail(`<${name}>: attribute ${a[0]} twice`);
      seen.add(a[0]);
      j += a[0].length;
      while (/\s/.test(text[j] ?? '')) j++;
      if (text[j] !== '=') return fail(`<${name}> ${a[0]}: expected '='`);
      j++;
      while (/\s/.test(text[j] ?? '')) j++;
      const q = text[j];
      if (q !== '"' && q !== "'") return fail(`<${name}> ${a[0]}: value not quoted`);
      const end = text.indexOf(q, j + 1);
      if (end < 0) return fail(`<${name}> ${a[0]}: unterminated value`);
      const p = checkText(text.slice(j + 1, end), j + 1);
      if (p) return p;
      j = end + 1;
    }
    i = j;
  }
  if (stack.length) return `end of document: <${stack[stack.length - 1]}> not closed`;
  if (!rootSeen) return 'no root element';
  return null;
}
