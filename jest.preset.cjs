// Shared Jest settings; each project's jest.config.cjs spreads this and names itself.
const path = require('path');

const root = __dirname;
const workspacePackages = ['core', 'onnx', 'adapters', 'runtime', 'export', 'compare', 'planner'];

module.exports = {
  testEnvironment: path.join(root, 'test-fixtures/jest/node-environment.cjs'),
  globalSetup: path.join(root, 'test-fixtures/jest/global-setup.cjs'),
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  transform: {
    '^.+\\.ts$': [
      'ts-jest',
      { tsconfig: path.join(root, 'tsconfig.spec.json'), diagnostics: false },
    ],
  },
  // Tests run against the sources of sibling packages, not their build output.
  moduleNameMapper: {
    ...Object.fromEntries(
      workspacePackages.map((name) => [`^@zerolm/${name}$`, path.join(root, `packages/${name}/src/index.ts`)]),
    ),
    // The fixture generator, for tests that need generated models.
    '^@zerolm/test-fixtures$': path.join(root, 'test-fixtures/src/index.ts'),
  },
  testTimeout: 120000,
};
