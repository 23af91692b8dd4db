import { defineService, resolveGraph } from '@dynamo-ts/sdk';

const svc = (name: string, dependencies = [] as ReturnType<typeof defineService>[]) =>
  defineService({ name, dependencies, create: () => ({}) });

describe('resolveGraph', () => {
  const Worker = svc('Worker');
  const Router = svc('Router', [Worker]);
  const Processor = svc('Processor', [Router, Worker]);
  const Frontend = svc('Frontend', [Processor]);
  Frontend.link(Processor).link(Router);

  it('serves the root and what is linked below it, dependencies first (distributed)', () => {
    const g = resolveGraph(Frontend, { includeDependencies: false });
    expect(g.services.map((s) => s.name)).toEqual(['Router', 'Processor', 'Frontend']);
    expect(g.dependencyOnly.size).toBe(0);
  });

  it('adds unlinked dependencies in embedded mode, before their dependents', () => {
    const g = resolveGraph(Frontend, { includeDependencies: true });
    const names = g.services.map((s) => s.name);
    expect(names).toEqual(['Worker', 'Router', 'Processor', 'Frontend']);
    expect([...g.dependencyOnly].map((s) => s.name)).toEqual(['Worker']);
  });

  it('serves a lone worker alone', () => {
    expect(resolveGraph(Worker, { includeDependencies: false }).services.map((s) => s.name)).toEqual(['Worker']);
  });

  it('rejects two different services with the same name', () => {
    const A = svc('Same');
    const B = svc('Same');
    const Root = svc('Root', [A, B]);
    expect(() => resolveGraph(Root, { includeDependencies: true })).toThrow(/two different services are named Same/);
  });

  it('rejects invalid service names', () => {
    expect(() => svc('bad name')).toThrow(/must match/);
  });
});
