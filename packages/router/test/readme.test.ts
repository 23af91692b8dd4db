import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

/** The first ```ts block of the README: the standalone example, which must compile. */
function readmeExample(): string {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  const m = /```ts\n([\s\S]*?)```/.exec(readme);
  if (m === null) throw new Error('no ```ts block in README.md');
  return m[1]!;
}

describe('README', () => {
  it('has an example that type-checks against the package (strict)', () => {
    const file = join(__dirname, '..', '__readme_example__.ts');
    const options: ts.CompilerOptions = {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2022.d.ts'],
      module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
      types: ['node'],
      skipLibCheck: true,
      baseUrl: join(__dirname, '..'),
      paths: { '@dynamo-ts/router': ['src/index.ts'] },
    };
    const host = ts.createCompilerHost(options);
    const source = readmeExample();
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (name, lang, ...rest) =>
      name === file ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, ...rest);
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (name) => name === file || fileExists(name);
    const program = ts.createProgram([file], options, host);
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(diagnostics).toEqual([]);
  }, 60_000);
});
