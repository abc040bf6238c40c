/** Download (or verify what was placed by hand), extract and check flowers: see `--help` and download-common.ts. */
import { main } from "./download-common";

main("flowers");
