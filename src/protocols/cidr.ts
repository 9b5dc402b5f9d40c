// Client address lists of the protocol matchers (`match.client`): addresses and CIDRs, IPv4 or IPv6.
import net from 'node:net'

/** A BlockList of the entries; throws TypeError naming `match.client` and the bad entry. */
export function cidrList(list: readonly string[]): net.BlockList {
  const bl = new net.BlockList()
  for (const entry of list) {
    const [addr = '', bits, extra] = entry.trim().split('/')
    const family = net.isIP(addr)
    if (family === 0 || extra !== undefined) throw new TypeError(`match.client: ${entry} is not an address or CIDR`)
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) { bl.addAddress(addr, type); continue }
    const prefix = Number(bits)
    if (!/^\d{1,3}$/.test(bits) || prefix > (family === 4 ? 32 : 128)) throw new TypeError(`match.client: ${entry} has a bad prefix length`)
    bl.addSubnet(addr, prefix, type)
  }
  return bl
}

/** Whether an address is in the list (false for an address that is not an IP). */
export function inList(list: net.BlockList, address: string): boolean {
  const family = net.isIP(address)
  return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6')
}
