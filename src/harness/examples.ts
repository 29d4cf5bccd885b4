// The example functions shipped in functions/ that the demo and the core benchmark run,
// with the input each is invoked with.

export interface Example {
  readonly name: string;
  readonly input: string;
}

export const EXAMPLES: readonly Example[] = [
  { name: 'hello-c', input: 'world' },
  { name: 'hello-as', input: 'world' },
  { name: 'mem64-c', input: 'checksum please' },
  { name: 'hello-py', input: '{"name": "thaw"}' },
  { name: 'stdlib-py', input: '{"n": 7}' },
];
