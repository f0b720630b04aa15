// Known-bad partners: each mutant is the reference partner with one named fault, and declares
// exactly the requirements that fault breaks. `chatconform selftest` checks the declarations.

export interface Mutant {
  name: string;
  /** Where the fault lives: the partner server or the reflector (the partner's client). */
  side: "server" | "reflector";
  description: string;
  breaks: string[];
}

export const MUTANTS: readonly Mutant[] = [
  {
    name: "plaintext-accepted",
    side: "server",
    description: "the server delivers a plaintext <body> without OMEMO instead of refusing it",
    breaks: ["ENC-14"],
  },
  {
    name: "no-receipt-check",
    side: "reflector",
    description: "the reflector sends a receipt for messages it could not decrypt (replays, tampered ciphertext)",
    breaks: ["ENC-10", "ENC-11"],
  },
  {
    name: "prekey-not-removed",
    side: "reflector",
    description: "the reflector never republishes its bundle, so a consumed one-time prekey stays published",
    breaks: ["ENC-08"],
  },
];

export function findMutant(name: string): Mutant | undefined {
  return MUTANTS.find((m) => m.name === name);
}
