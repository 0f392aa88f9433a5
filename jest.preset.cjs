// Shared Jest settings; each project's jest.config.cjs spreads this and names itself.
const path = require('path');

const root = __dirname;
const workspacePackages = ['core', 'onnx', 'adapters', 'planner'];

module.exports = {
  testEnvironment: path.join(root, 'tools/jest/node-environment.cjs'),
  globalSetup: path.join(root, 'tools/jest/global-setup.cjs'),
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
    '^@zerolm/tools$': path.join(root, 'tools/src/index.ts'),
  },
  testTimeout: 120000,
};
