// Typed dataplane errors: what was being done, on which device, and what iproute2 said.

export class DataplaneError extends Error {
  override readonly name = 'DataplaneError';
  constructor(
    message: string,
    readonly context: { device?: string; step: string; errors?: string[] },
  ) {
    super(context.errors && context.errors.length > 0 ? `${message}: ${context.errors.join('; ')}` : message);
  }
}
