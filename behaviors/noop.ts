import { defineBehavior, passStage, Type } from '../src/faults/behavior.js'

export default defineBehavior({
  type: 'noop',
  summary: 'Pass everything through untouched (a valid type that does nothing).',
  attributes: Type.Object({}),
  stage: (_attributes, _link, next) => passStage(next),
})
