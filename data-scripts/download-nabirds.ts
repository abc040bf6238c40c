/** Download (or verify what was placed by hand), extract and check nabirds: see `--help` and download-common.ts. */
import { main } from "./download-common";

main("nabirds");
