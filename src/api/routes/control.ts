// coquin's own control routes: partitions (src/control/partition.ts) and scenarios (src/control/scenario.ts).
import type { Registry } from '../../control/registry.js'
import { scenarioFromBody } from '../../control/scenario.js'
import { empty, json, type Route } from '../http.js'

export function controlRoutes(registry: Registry): Route[] {
  return [
    {
      path: ['partitions'],                          // coquin's own: src/control/partition.ts
      methods: {
        GET: { run: () => json(200, registry.partitions.list().map(p => p.toJSON())) },
        POST: { mutates: true, run: ({ body }) => json(201, registry.partitions.cut(body()).toJSON()) },
      },
    },
    {
      path: ['partitions', '*'],
      methods: {
        GET: { run: ({ params: [name] }) => json(200, registry.partitions.get(name!).toJSON()) },
        DELETE: { mutates: true, run: ({ params: [name] }) => { registry.partitions.heal(name!); return empty(204) } },
      },
    },
    {
      path: ['scenarios'],                           // coquin's own: src/control/scenario.ts
      methods: {
        GET: { run: () => json(200, registry.scenarios.list().map(r => r.toJSON())) },
        POST: {
          mutates: true,
          run({ body }) {
            const run = registry.scenarios.start(scenarioFromBody(body(), registry.catalog.behaviors))
            return { ...json(201, run.toJSON()), headers: { Location: `/scenarios/${encodeURIComponent(run.id)}` } }
          },
        },
      },
    },
    {
      path: ['scenarios', '*'],
      methods: {
        GET: { run: ({ params: [id] }) => json(200, registry.scenarios.get(id!).toJSON()) },
        DELETE: { mutates: true, async run({ params: [id] }) { await registry.scenarios.stop(id!); return empty(204) } },
      },
    },
  ]
}
