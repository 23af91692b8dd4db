/**
 * The multi-node suite (`npm run test:multinode`): the seed's deployments across network
 * namespaces (deploy/netns). Needs root and iproute2, so it is not part of `npm test`.
 */
module.exports = {
  displayName: 'multinode',
  rootDir: __dirname,
  testEnvironment: 'node',
  testMatch: ['<rootDir>/test/multinode/**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }] },
  moduleNameMapper: {
    '^@dynamo-ts/(runtime|router|sdk|frontend)$': '<rootDir>/packages/$1/src/index.ts',
    '^@dynamo-ts/(runtime|router|sdk|frontend)/(.*)$': '<rootDir>/packages/$1/src/$2',
  },
  maxWorkers: 1,
};
