// Generates every named test fixture once, before any test file runs, so that tests never
// depend on which other test generated a fixture first. Uses the built generator (the test target
// depends on the build); without a build each test file still generates what it needs.
const fs = require('fs');
const path = require('path');

module.exports = async function globalSetup() {
  const built = path.join(__dirname, '../dist/index.js');
  if (fs.existsSync(built)) require(built).ensureFixtures();
};
