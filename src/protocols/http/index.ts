// HTTP mode: framing, matching and the per-link HTTP stages.
export { HTTP_FALLBACK_POLICIES, type HttpFallbackPolicy } from './stages.js'
export { createHttpStages, splitTarget, pathOf, HEADER_FAULT_PREFIX, type HttpLinkView, type HttpStageOptions, type HttpExchangeEvent } from './stages.js'
export { Framer, fallbackReason, parseHead, MAX_HEAD_BYTES, type FrameHandler, type Head, type RequestHead, type ResponseHead, type HeaderField } from './framer.js'
export { compileMatch, checkMatch, globToRegExp, matcherOf, type MatchSpec, type Matcher } from './match.js'
export { buildResponse, rewriteHead, mergeEdits } from './message.js'
