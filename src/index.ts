// coquin as a library: the embedded server for test suites, the registry, and the behavior API.
export { startCoquin, type StartOptions, type CoquinServer } from './server.js'
export { Registry, type RegistryOptions, type ProxySpec } from './registry.js'
export { Proxy } from './proxy.js'
export { defineBehavior, type Behavior, type Stage, type Sink, type LinkView } from './behavior.js'
export { builtins } from '../behaviors/index.js'
export { loadConfig, applyConfig } from './config.js'
export { CoquinError } from './errors.js'
export { Coquin, ProxyHandle, CoquinApiError } from './client.js'
