// Validates Camunda Modeler element templates against Camunda's published JSON schema
// (@camunda/element-templates-json-schema, the Camunda 7 one), with Ajv (JSON Schema draft-07).
// Usage: node deploy/tools/validate-element-templates.mjs FILE.json [...]
// Prints one line per file: "ok FILE" or "invalid FILE: <where> <what>"; exits 1 when any is invalid.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import Ajv from 'ajv';

const require = createRequire(import.meta.url);
const schema = require('@camunda/element-templates-json-schema/resources/schema.json');
const version = require('@camunda/element-templates-json-schema/package.json').version;

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(schema);

const files = process.argv.slice(2);
if (!files.length) {
  console.error('usage: validate-element-templates.mjs FILE.json [...]');
  process.exit(2);
}
let invalid = 0;
for (const file of files) {
  let template;
  try {
    template = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    console.log(`invalid ${file}: ${error.message}`);
    invalid += 1;
    continue;
  }
  if (validate(template)) {
    console.log(`ok ${file}`);
  } else {
    invalid += 1;
    const problems = validate.errors.map((e) => `${e.instancePath || '/'} ${e.message}`);
    console.log(`invalid ${file}: ${[...new Set(problems)].join('; ')}`);
  }
}
console.log(`schema @camunda/element-templates-json-schema@${version}: ${files.length - invalid} valid, ${invalid} invalid`);
process.exit(invalid ? 1 : 0);
