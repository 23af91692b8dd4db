/** Jest projects: one per package, each resolving @dynamo-ts/* to sources so tests need no build. */
const moduleNameMapper = {
  '^@dynamo-ts/(runtime|router|mocker|sdk|frontend|llm|bench|llamacpp|vllm)$':
    '<rootDir>/../../packages/$1/src/index.ts',
  '^@dynamo-ts/(runtime|router|mocker|sdk|frontend|llm|bench|llamacpp|vllm)/(.*)$':
    '<rootDir>/../../packages/$1/src/$2',
};
const project = (dir, name) => ({
  displayName: name,
  rootDir: dir,
  testEnvironment: 'node',
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/../../tsconfig.test.json' }] },
  moduleNameMapper,
});
module.exports = {
  maxWorkers: 2,
  projects: [
    project('packages/runtime', 'runtime'),
    project('packages/router', 'router'),
    project('packages/mocker', 'mocker'),
    project('packages/sdk', 'sdk'),
    project('packages/frontend', 'frontend'),
    project('packages/llm', 'llm'),
    project('packages/bench', 'bench'),
    project('packages/llamacpp', 'llamacpp'),
    project('examples/llm', 'llm-example'),
    project('packages/vllm', 'vllm'),
    project('examples/vllm', 'vllm-example'),
    project('examples/router-only', 'router-only'),
    { ...project('examples/hello-world', 'hello-world'), testPathIgnorePatterns: ['/node_modules/', '/test/faults/'] },
    // Fault injection with real processes (npm run test:faults): spawns the built CLI, so `tsc -b` first.
    {
      ...project('examples/hello-world', 'faults'),
      testMatch: ['<rootDir>/test/faults/**/*.test.ts'],
      globalSetup: '<rootDir>/test/faults/global-setup.ts',
      globalTeardown: '<rootDir>/test/faults/global-teardown.ts',
    },
  ],
};
