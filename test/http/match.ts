import t from 'tap'
import { checkMatch, compileMatch, globToRegExp, type MatchSpec } from '../../src/protocols/http/match.js'
import { splitTarget } from '../../src/protocols/http/stages.js'
import type { HttpRequest } from '../../src/faults/behavior.js'

const req = (over: Partial<HttpRequest> = {}): HttpRequest => ({
  method: 'GET', target: '/', path: '/', query: {}, version: '1.1', headers: {}, rawHeaders: [],
  client: { address: '127.0.0.1', port: 5000 }, link: 1, index: 0, ...over,
})
const m = (spec: MatchSpec, r: Partial<HttpRequest>) => compileMatch(spec)(req(r))

t.test('path globs: * within a segment, ** across, ? one character', async t => {
  const cases: [string, string, boolean][] = [
    ['/bucket-a/*', '/bucket-a/key', true],
    ['/bucket-a/*', '/bucket-a/', true],
    ['/bucket-a/*', '/bucket-a/dir/key', false],
    ['/bucket-a/*', '/bucket-ab/key', false],
    ['/bucket-a/**', '/bucket-a/dir/key', true],
    ['/bucket-a/**', '/bucket-a', true],
    ['/bucket-a/**', '/bucket-ab', false],
    ['/**/index.html', '/index.html', true],
    ['/**/index.html', '/a/b/index.html', true],
    ['/a/**/z', '/a/z', true],
    ['/a/**/z', '/a/b/c/z', true],
    ['/a/**/z', '/a/bz', false],
    ['/*.jpg', '/cat.jpg', true],
    ['/*.jpg', '/catXjpg', false],
    ['/v?/x', '/v1/x', true],
    ['/v?/x', '/v10/x', false],
    ['/a+b/(c)', '/a+b/(c)', true],
    ['**', '/anything/at/all', true],
  ]
  for (const [glob, path, want] of cases) t.equal(globToRegExp(glob).test(path), want, `${glob} ~ ${path}`)
})

t.test('method, prefix, regex, headers, query; all conditions must hold', async t => {
  t.ok(m({ method: 'put' }, { method: 'PUT' }))
  t.ok(m({ method: ['GET', 'HEAD'] }, { method: 'HEAD' }))
  t.notOk(m({ method: ['GET', 'HEAD'] }, { method: 'POST' }))
  t.ok(m({ path_prefix: '/api/' }, { path: '/api/v1' }))
  t.notOk(m({ path_prefix: '/api/' }, { path: '/apix' }))
  t.ok(m({ path_regex: '^/v[0-9]+/' }, { path: '/v2/users' }))
  t.ok(m({ headers: { 'X-Tenant': 'acme' } }, { headers: { 'x-tenant': 'acme' } }), 'names in any case')
  t.notOk(m({ headers: { 'x-tenant': 'acme' } }, { headers: { 'x-tenant': 'ACME' } }), 'values exact')
  t.ok(m({ headers: { 'x-tenant': '/^ac/i' } }, { headers: { 'x-tenant': 'ACME' } }), '/regex/i')
  t.notOk(m({ headers: { 'x-tenant': '/.*/' } }, { headers: {} }), 'a missing header never matches')
  t.ok(m({ headers: { 'user-agent': '/aws-sdk-java/' } }, { headers: { 'user-agent': 'aws-sdk-java/2.20 Linux' } }))
  t.ok(m({ query: { uploadId: '/.+/' } }, { query: { uploadId: 'abc' } }))
  t.notOk(m({ query: { uploadId: '/.+/' } }, { query: {} }))
  t.ok(m({ query: { 'list-type': '2' } }, { query: { 'list-type': '2' } }))
  const spec = { method: 'PUT', path: '/bucket-a/*', headers: { 'content-type': 'image/jpeg' } }
  t.ok(m(spec, { method: 'PUT', path: '/bucket-a/x', headers: { 'content-type': 'image/jpeg' } }))
  t.notOk(m(spec, { method: 'PUT', path: '/bucket-a/x', headers: { 'content-type': 'text/plain' } }))
  t.notOk(m(spec, { method: 'GET', path: '/bucket-a/x', headers: { 'content-type': 'image/jpeg' } }))
  t.ok(m({}, {}), 'an empty match matches everything')
})

t.test('client CIDRs, IPv4 and IPv6 (and IPv4-mapped IPv6)', async t => {
  const c = (address: string) => ({ client: { address, port: 1 } })
  t.ok(m({ client: ['10.0.0.0/8'] }, c('10.1.2.3')))
  t.notOk(m({ client: ['10.0.0.0/8'] }, c('11.1.2.3')))
  t.ok(m({ client: ['127.0.0.1'] }, c('127.0.0.1')), 'a bare address')
  t.ok(m({ client: ['10.0.0.0/8'] }, c('::ffff:10.9.9.9')), 'IPv4-mapped')
  t.ok(m({ client: ['fd00::/8'] }, c('fd12:3456::1')))
  t.notOk(m({ client: ['fd00::/8'] }, c('fe80::1')))
  t.ok(m({ client: ['192.168.0.0/16', '::1/128'] }, c('::1')))
  t.notOk(m({ client: ['10.0.0.0/8'] }, c('')), 'no address: no match')
})

t.test('bad specs are reported, not thrown at request time', async t => {
  t.match(checkMatch({ path_regex: '(' }), /^match\.path_regex: /)
  t.match(checkMatch({ headers: { a: '/(/' } }), /^match\.headers\.a: /)
  t.match(checkMatch({ client: ['10.0.0.0/33'] }), /bad prefix/)
  t.match(checkMatch({ client: ['example.com'] }), /not an address/)
  t.match(checkMatch({ client: ['10.0.0.0/8/1'] }), /not an address/)
  t.equal(checkMatch({ path: '/a/**', client: ['::/0'] }), undefined)
  t.equal(checkMatch(undefined), undefined)
})

t.test('request targets: origin, absolute, authority and asterisk forms', async t => {
  t.same(splitTarget('GET', '/a/b?x=1&y=%20z&x=2'), { path: '/a/b', query: { x: '1', y: ' z' } })
  t.same(splitTarget('GET', 'http://example.com:80/a?b=c'), { path: '/a', query: { b: 'c' } })
  t.same(splitTarget('GET', 'http://example.com'), { path: '/', query: {} })
  t.same(splitTarget('CONNECT', 'example.com:443'), { path: '', query: {} })
  t.same(splitTarget('OPTIONS', '*'), { path: '*', query: {} })
  t.same(splitTarget('GET', '/p#frag'), { path: '/p', query: {} })
})
