/** Download (or verify what was placed by hand), extract and check aircraft: see `--help` and download-common.ts. */
import { main } from "./download-common";

main("aircraft");
