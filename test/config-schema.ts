// configs/coquin.schema.json is generated from the behaviors: this test keeps it in sync.
// After adding or changing a behavior, regenerate it: UPDATE_SCHEMA=1 npx tap test/config-schema.ts
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import { configSchema, schemaText, writeSchema } from '../src/control/config.js'
import { builtins } from '../behaviors/index.js'

const file = fileURLToPath(new URL('../configs/coquin.schema.json', import.meta.url))

t.test('configs/coquin.schema.json is the schema generated from the built-in behaviors', async t => {
  if (process.env.UPDATE_SCHEMA === '1') await writeSchema(file, builtins)
  const text = await readFile(file, 'utf8')
  t.equal(text, schemaText(builtins), 'stale: run UPDATE_SCHEMA=1 npx tap test/config-schema.ts')
})

t.test('the schema is a valid draft-07 schema with one toxic branch per behavior', async t => {
  const schema = configSchema(builtins) as { $id: string; title: string; description: string; definitions: { toxic: { oneOf: { properties: { type: { const: string } } }[] } } }
  const ajv = new Ajv({ strict: false })
  t.ok(ajv.validateSchema(schema), JSON.stringify(ajv.errors))
  t.match(schema, { $schema: 'http://json-schema.org/draft-07/schema#', $id: String, title: String, description: String })
  t.same(schema.definitions.toxic.oneOf.map(b => b.properties.type.const), builtins.map(b => b.type))
  t.equal(JSON.stringify(schema), JSON.stringify(JSON.parse(JSON.stringify(schema))), 'plain JSON, no symbols or undefined')
})
