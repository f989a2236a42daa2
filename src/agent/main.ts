// `weft agent`: entry point. (Being built: lease acquisition, subnet.env, dataplane.)
export async function runAgentCommand(_argv: string[]): Promise<number> {
  process.stderr.write('weft agent: not implemented yet\n');
  return 2;
}
