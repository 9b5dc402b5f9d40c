// The one way coquin makes a JSON Schema validator (ajv), so that every schema — fault attributes, configs,
// scenarios, partitions — is read with the same rules. Imports nothing of the rest of src/.
import { Ajv } from 'ajv'

export interface ValidatorOptions {
  /** Keep the data in each error (`verbose`) and read `discriminator` (configs and scenarios: file:line errors). */
  documents?: boolean
}

/**
 * A fresh ajv instance: defaults filled in (`useDefaults`), every error reported (`allErrors`), unknown keywords
 * such as `title` allowed (`strict: false`), and `strictNumbers`: NaN and ±Infinity (YAML's .nan and .inf, JSON's
 * 1e999) are not numbers — without it ajv takes Infinity as an integer that no `minimum` refuses.
 */
export function createAjv(opts: ValidatorOptions = {}): Ajv {
  return new Ajv({
    useDefaults: true, allErrors: true, strict: false, strictNumbers: true,
    ...(opts.documents ? { discriminator: true, verbose: true } : {}),
  })
}
