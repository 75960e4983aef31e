/**
 * Policy errors. Every problem found in a policy document is a `PolicyIssue` with a 1-based
 * line and column (UTF-16 code units, the way editors count) and a message that uses Tailscale's
 * wording where Tailscale has one. `PolicyError` carries all issues of one parse/validate run.
 */
import { SwitchboardError } from '@switchboard/common';

/** A location in the policy text: 1-based line and column. */
export interface SourceLocation {
  readonly line: number;
  readonly column: number;
}

/** One problem in a policy document, located where it was found. */
export interface PolicyIssue extends SourceLocation {
  readonly message: string;
}

/** Formats an issue as `line:column: message`. */
export function formatIssue(issue: PolicyIssue): string {
  return `${issue.line}:${issue.column}: ${issue.message}`;
}

/**
 * The policy text is invalid (syntax, schema, references, or its own tests failed).
 * `line`, `column` and `reason` describe the first issue; `issues` holds all of them in text order.
 */
export class PolicyError extends SwitchboardError {
  readonly line: number;
  readonly column: number;
  /** The first issue's message without its location. */
  readonly reason: string;
  readonly issues: readonly PolicyIssue[];

  constructor(issues: readonly PolicyIssue[], hint?: string) {
    const sorted = [...issues].sort((a, b) => a.line - b.line || a.column - b.column);
    const first = sorted[0] ?? { line: 1, column: 1, message: 'invalid policy' };
    super(
      'invalid_policy',
      sorted.length > 0 ? sorted.map(formatIssue).join('\n') : formatIssue(first),
      hint,
      {
        issues: sorted.map((i) => ({ line: i.line, column: i.column, message: i.message })),
      },
    );
    this.line = first.line;
    this.column = first.column;
    this.reason = first.message;
    this.issues = sorted.length > 0 ? sorted : [first];
  }
}
