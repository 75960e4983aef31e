/**
 * HuJSON (JWCC) parser: standard JSON plus `//` and `/* *\/` comments and trailing commas, nothing
 * else. It produces a small syntax tree in which every value and every object key carries the line
 * and column where it starts, so later stages can point at the exact place a problem is.
 * Errors are thrown as `PolicyError` with the message prefix `parsing HuJSON:` (headscale's wording).
 */
import { PolicyError, type SourceLocation } from './errors.js';

/**
 * How deeply arrays and objects may nest (the top-level value is level 1). Real policies nest at
 * most about 8 levels (a grant's `app` capability values are the only free-form JSON); 128 leaves
 * room for any of them, while keeping the recursive parser and everything that later walks the
 * tree (toPlain, JSON.stringify of capability values) far from the engine's stack limit
 * (thousands of levels). Deeper text is refused with a located error at the first bracket past
 * the limit.
 */
export const MAX_HUJSON_DEPTH = 128;

export interface JsonLoc extends SourceLocation {
  /** Offset of the first character in the source text. */
  readonly offset: number;
}

export interface JsonMember {
  readonly key: string;
  readonly keyLoc: JsonLoc;
  readonly value: JsonNode;
}

export type JsonNode =
  | { readonly kind: 'object'; readonly loc: JsonLoc; readonly members: readonly JsonMember[] }
  | { readonly kind: 'array'; readonly loc: JsonLoc; readonly items: readonly JsonNode[] }
  | { readonly kind: 'string'; readonly loc: JsonLoc; readonly value: string }
  | { readonly kind: 'number'; readonly loc: JsonLoc; readonly value: number; readonly raw: string }
  | { readonly kind: 'boolean'; readonly loc: JsonLoc; readonly value: boolean }
  | { readonly kind: 'null'; readonly loc: JsonLoc };

/** A JSON type name as used in messages: object, array, string, number, boolean, null. */
export function jsonTypeName(node: JsonNode): string {
  return node.kind;
}

/** Converts a syntax tree back to a plain JavaScript value (used for `app` capability values). */
export function toPlain(node: JsonNode): unknown {
  switch (node.kind) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const m of node.members) out[m.key] = toPlain(m.value);
      return out;
    }
    case 'array':
      return node.items.map(toPlain);
    case 'string':
    case 'number':
    case 'boolean':
      return node.value;
    case 'null':
      return null;
  }
}

/**
 * Parses HuJSON text. Returns `null` for a document that is empty or holds only whitespace and
 * comments (headscale: "an empty document means no policy").
 */
export function parseHujson(text: string): JsonNode | null {
  const p = new Parser(text);
  p.skipTrivia();
  if (p.atEnd()) return null;
  const value = p.parseValue();
  p.skipTrivia();
  if (!p.atEnd()) p.fail(`invalid character ${p.describeChar()} after top-level value`);
  return value;
}

class Parser {
  private pos = 0;
  private line = 1;
  private lineStart = 0;
  /** Arrays and objects open around the current position (brackets in strings or comments never count). */
  private depth = 0;

  constructor(private readonly text: string) {}

  atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  loc(): JsonLoc {
    return { line: this.line, column: this.pos - this.lineStart + 1, offset: this.pos };
  }

  fail(message: string, at?: JsonLoc): never {
    const where = at ?? this.loc();
    throw new PolicyError([
      { line: where.line, column: where.column, message: `parsing HuJSON: ${message}` },
    ]);
  }

  describeChar(): string {
    if (this.atEnd()) return 'end of input';
    const c = this.text[this.pos] ?? '';
    return JSON.stringify(c);
  }

  private advance(n = 1): void {
    for (let i = 0; i < n; i++) {
      if (this.text.charCodeAt(this.pos) === 10) {
        this.line++;
        this.lineStart = this.pos + 1;
      }
      this.pos++;
    }
  }

  skipTrivia(): void {
    const t = this.text;
    for (;;) {
      const c = t.charCodeAt(this.pos);
      if (c === 32 || c === 9 || c === 13 || c === 10) {
        this.advance();
        continue;
      }
      if (c === 47 /* / */) {
        const next = t.charCodeAt(this.pos + 1);
        if (next === 47) {
          while (!this.atEnd() && t.charCodeAt(this.pos) !== 10) this.advance();
          continue;
        }
        if (next === 42 /* * */) {
          const start = this.loc();
          this.advance(2);
          for (;;) {
            if (this.atEnd()) this.fail('unterminated block comment', start);
            if (t.charCodeAt(this.pos) === 42 && t.charCodeAt(this.pos + 1) === 47) {
              this.advance(2);
              break;
            }
            this.advance();
          }
          continue;
        }
        this.fail(`invalid character "/" (a comment starts with "//" or "/*")`);
      }
      return;
    }
  }

  parseValue(): JsonNode {
    this.skipTrivia();
    if (this.atEnd()) this.fail('unexpected end of input, expected a value');
    const c = this.text[this.pos] ?? '';
    switch (c) {
      case '{':
      case '[': {
        if (this.depth >= MAX_HUJSON_DEPTH)
          this.fail(`nested deeper than ${MAX_HUJSON_DEPTH} levels (arrays and objects)`);
        this.depth++;
        const node = c === '{' ? this.parseObject() : this.parseArray();
        this.depth--;
        return node;
      }
      case '"': {
        const loc = this.loc();
        return { kind: 'string', loc, value: this.parseString() };
      }
      case 't':
        return this.parseLiteral('true', { kind: 'boolean', loc: this.loc(), value: true });
      case 'f':
        return this.parseLiteral('false', { kind: 'boolean', loc: this.loc(), value: false });
      case 'n':
        return this.parseLiteral('null', { kind: 'null', loc: this.loc() });
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.parseNumber();
        return this.fail(`invalid character ${this.describeChar()} looking for beginning of value`);
    }
  }

  private parseLiteral(word: string, node: JsonNode): JsonNode {
    if (this.text.startsWith(word, this.pos)) {
      const after = this.text.charCodeAt(this.pos + word.length);
      if (!isIdentChar(after)) {
        this.advance(word.length);
        return node;
      }
    }
    return this.fail(`invalid literal, expected ${word}`);
  }

  private parseNumber(): JsonNode {
    const loc = this.loc();
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(
      this.text.slice(this.pos, this.pos + 400),
    );
    if (m === null) return this.fail('invalid number');
    const raw = m[0];
    if (
      isIdentChar(this.text.charCodeAt(this.pos + raw.length)) ||
      this.text[this.pos + raw.length] === '.'
    ) {
      return this.fail('invalid number');
    }
    this.advance(raw.length);
    return { kind: 'number', loc, value: Number(raw), raw };
  }

  private parseString(): string {
    const start = this.loc();
    const t = this.text;
    this.advance(); // opening quote
    let out = '';
    let chunkStart = this.pos;
    for (;;) {
      if (this.atEnd()) this.fail('unterminated string', start);
      const c = t.charCodeAt(this.pos);
      if (c === 34 /* " */) {
        out += t.slice(chunkStart, this.pos);
        this.advance();
        return out;
      }
      if (c === 10) this.fail('unterminated string: newline in string literal', start);
      if (c < 0x20) this.fail('invalid control character in string literal');
      if (c === 92 /* \ */) {
        out += t.slice(chunkStart, this.pos);
        const escLoc = this.loc();
        const e = t[this.pos + 1] ?? '';
        switch (e) {
          case '"':
          case '\\':
          case '/':
            out += e;
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            const hex = t.slice(this.pos + 2, this.pos + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('invalid \\u escape in string literal', escLoc);
            out += String.fromCharCode(parseInt(hex, 16));
            this.advance(4);
            break;
          }
          default:
            this.fail(`invalid escape character ${JSON.stringify(e)} in string literal`, escLoc);
        }
        this.advance(2);
        chunkStart = this.pos;
        continue;
      }
      this.pos++; // never a newline here (control characters rejected above)
    }
  }

  private parseArray(): JsonNode {
    const loc = this.loc();
    this.advance(); // [
    const items: JsonNode[] = [];
    for (;;) {
      this.skipTrivia();
      if (this.atEnd()) this.fail('unexpected end of input, expected "]"', loc);
      if (this.text[this.pos] === ']') {
        this.advance();
        return { kind: 'array', loc, items };
      }
      items.push(this.parseValue());
      this.skipTrivia();
      const c = this.text[this.pos];
      if (c === ',') {
        this.advance();
        continue;
      }
      if (c === ']') continue;
      if (this.atEnd()) this.fail('unexpected end of input, expected "," or "]"', loc);
      this.fail(`invalid character ${this.describeChar()} after array element, expected "," or "]"`);
    }
  }

  private parseObject(): JsonNode {
    const loc = this.loc();
    this.advance(); // {
    const members: JsonMember[] = [];
    const seen = new Set<string>();
    for (;;) {
      this.skipTrivia();
      if (this.atEnd()) this.fail('unexpected end of input, expected "}"', loc);
      const c = this.text[this.pos];
      if (c === '}') {
        this.advance();
        return { kind: 'object', loc, members };
      }
      if (c !== '"')
        this.fail(`invalid character ${this.describeChar()} looking for beginning of object key string`);
      const keyLoc = this.loc();
      const key = this.parseString();
      if (seen.has(key)) this.fail(`duplicate object key ${JSON.stringify(key)}`, keyLoc);
      seen.add(key);
      this.skipTrivia();
      if (this.text[this.pos] !== ':') {
        if (this.atEnd()) this.fail('unexpected end of input, expected ":"', loc);
        this.fail(`invalid character ${this.describeChar()} after object key, expected ":"`);
      }
      this.advance();
      const value = this.parseValue();
      members.push({ key, keyLoc, value });
      this.skipTrivia();
      const d = this.text[this.pos];
      if (d === ',') {
        this.advance();
        continue;
      }
      if (d === '}') continue;
      if (this.atEnd()) this.fail('unexpected end of input, expected "," or "}"', loc);
      this.fail(`invalid character ${this.describeChar()} after object value, expected "," or "}"`);
    }
  }
}

function isIdentChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}
