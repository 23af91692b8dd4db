/**
 * The consumer test (npm run test:consumer): packs the packages (their prepack rebuilds dist), so
 * it runs on its own, after the other suites, never beside them.
 */
module.exports = {
  rootDir: __dirname,
  testEnvironment: 'node',
  testMatch: ['<rootDir>/test/consumer/**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }] },
  moduleNameMapper: {
    '^@dynamo-ts/(runtime|router|sdk|frontend)/(.*)$': '<rootDir>/packages/$1/src/$2',
  },
  maxWorkers: 1,
};
