const preset = require('../../jest.preset.cjs');

module.exports = { ...preset, displayName: '@zerolm/compare' };
