// dcmjs ships its data dictionary as plain JavaScript without type declarations; this is the part we read.
declare module 'dcmjs/dictionary' {
  export interface DictionaryEntry {
    /** "(GGGG,EEEE)", upper-case hex. */
    readonly tag: string;
    readonly vr: string;
    /** The DICOM keyword, e.g. "PatientName". */
    readonly name: string;
    readonly vm: string;
    /** "DICOM" for standard attributes, "PrivateTag" for the private ones dcmjs knows. */
    readonly version: string;
  }
  export const dictionary: Readonly<Record<string, DictionaryEntry | undefined>>;
}
