// coquin's journal over HTTP: `GET /events` pages it, `GET /events?follow=1` streams it as NDJSON.
import type http from 'node:http'
import { parseEventQuery, type EventQuery, type Journal, type Subscription } from '../../observe/journal.js'
import { InvalidRequestError } from '../../core/errors.js'
import { json, type Route } from '../http.js'

/** The route, and a way to end every open follow stream (when the API closes). */
export function eventRoutes(journal: Journal): { routes: Route[]; endStreams(): void } {
  /** Open `GET /events?follow=1` responses, each with its way to end. */
  const streams = new Map<http.ServerResponse, () => void>()
  /**
   * NDJSON, one event per line, each written as it comes. The journal holds what the response cannot
   * take yet (write() said false) in this follower's bounded backlog until 'drain'; past the bound the
   * oldest are dropped and a `{"type":"dropped",...}` line says how many. Ends when the client goes away,
   * after `limit` events, or when the API closes.
   */
  function followEvents(journal: Journal, res: http.ServerResponse, q: EventQuery): void {
    res.writeHead(200, {
      'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no', Connection: 'close',
    })
    res.flushHeaders()
    let sub: Subscription | undefined
    let sent = 0
    let done = false
    const end = () => {
      done = true
      streams.delete(res)
      sub?.close()
      if (!res.writableEnded && !res.destroyed) res.end()
    }
    streams.set(res, end)
    res.on('close', end)
    const filter = { ...(q.proxy ? { proxy: q.proxy } : {}), ...(q.type ? { type: q.type } : {}), ...(q.since !== undefined ? { since: q.since } : {}) }
    sub = journal.subscribe({ filter }, item => {
      if (done || res.destroyed) return false
      const ok = res.write(`${JSON.stringify(item)}\n`)
      if (item.type !== 'dropped' && q.limit !== undefined && ++sent >= q.limit) { done = true; if (sub) end(); return false }
      return ok
    })
    if (done || q.limit === 0) { end(); return }
    res.on('drain', () => sub?.resume())
  }

  const route: Route = {
    path: ['events'],                              // coquin's own: the journal
    methods: {
      GET: {
        run({ query }) {
          let q: EventQuery
          try { q = parseEventQuery(query) } catch (err) { throw new InvalidRequestError((err as Error).message) }
          const follow = query.get('follow')
          if (follow === '1' || follow === 'true') return { status: 200, stream: res => followEvents(journal, res, q) }
          return {
            ...json(200, journal.query(q)),
            headers: { 'X-Coquin-Journal-Oldest': String(journal.oldestId), 'X-Coquin-Journal-Last': String(journal.lastId) },
          }
        },
      },
    },
  }
  return { routes: [route], endStreams: () => { for (const end of [...streams.values()]) end() } }
}
