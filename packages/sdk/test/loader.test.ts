import path from 'node:path';
import { loadService, parseTarget } from '@dynamo-ts/sdk';

const fixtures = path.join(__dirname, 'fixtures');

describe('loadService', () => {
  it('parses module:Service targets', () => {
    expect(parseTarget('components/graph:Frontend')).toEqual({
      modulePath: 'components/graph',
      exportName: 'Frontend',
    });
    expect(() => parseTarget('components/graph')).toThrow(/must be <module>:<Service>/);
    expect(() => parseTarget('x:')).toThrow(/must be <module>:<Service>/);
  });

  it('loads a TypeScript module without its extension', () => {
    const svc = loadService('services:Echo', fixtures);
    expect(svc.name).toBe('Echo');
  });

  it('names what the module does export when the service is missing', () => {
    expect(() => loadService('services:Nope', fixtures)).toThrow(/exports no service named Nope \(it exports: Echo\)/);
  });

  it('names the module when it does not exist', () => {
    expect(() => loadService('missing:Echo', fixtures)).toThrow(/module missing not found/);
  });
});
