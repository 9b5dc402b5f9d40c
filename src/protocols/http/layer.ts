// HTTP as a protocol layer: builds the HTTP stages' view of a link from the generic ProtocolHost — the
// proxy's `header_faults` and `http_fallback`, the fallback's count and record (once per link), and the
// per-request exchange events when an observer listens.
import type { ProtocolLayer } from '../layer.js'
import { createHttpStages, type HttpExchangeEvent, type HttpLinkView } from './stages.js'
import { fallbackReason } from './framer.js'

export const httpLayer: ProtocolLayer = {
  name: 'http',
  create(host, next) {
    const { owner, observer, link } = host
    let fellBack = false
    const view: HttpLinkView = {
      id: host.id,
      get client() { return host.client },
      log: host.log,
      clock: host.clock,
      random: host.random,
      reset: reason => host.reset(reason),
      close: reason => host.close(reason),
      applied: (fault, request, action) => host.applied(fault, request, action),
      acted: (fault, request, action) => host.acted(fault, request, action),
      fallback: (stream, detail) => {
        const action = owner.httpFallback ?? 'pass'
        if (fellBack) return action
        fellBack = true
        host.log.debug({ link: host.id, stream, reason: detail, action }, 'http link fell back to tcp')
        observer.httpFallback?.(owner.name, link, { stream, reason: fallbackReason(detail), detail, action })
        return action
      },
      ...(observer.httpRequest ? { exchanged: (e: HttpExchangeEvent) => observer.httpRequest!(owner.name, link, e) } : {}),
    }
    return createHttpStages(view, () => owner.faults, next, { headerFaults: () => owner.headerFaults ?? false })
  },
}
