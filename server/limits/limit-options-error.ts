/** Raised when a limiter is built with options it cannot work with; names the option. */
export class LimitOptionsError extends RangeError {
  constructor(readonly option: string, message: string) {
    super(`${option}: ${message}`);
    this.name = 'LimitOptionsError';
  }
}

/** Checks that an option is a finite number ≥ 0 (an integer when asked) and returns it. */
export function nonNegative(option: string, value: number, integer = false): number {
  if (!Number.isFinite(value) || value < 0 || (integer && !Number.isInteger(value))) {
    throw new LimitOptionsError(option, `expected a finite ${integer ? 'integer' : 'number'} ≥ 0, got ${value}`);
  }
  return value;
}
