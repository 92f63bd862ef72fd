# Writes n JSON lines of ~103 bytes, the ETL benchmark's input:
#   awk -v n=1000000 -f bench/gen_json.awk > /tmp/sluice-bench/etl-input.jsonl
# The fields mirror the generator stage's default record (without ts).
BEGIN {
    split("US DE FR GB JP BR IN CA", cc, " ")
    for (i = 0; i < n; i++)
        printf "{\"seq\":%d,\"user\":\"user-%d\",\"amount\":%.2f," \
               "\"country\":\"%s\",\"msg\":\"the quick brown fox jumps over\"}\n",
               i, i % 1000, (i * 7919 % 100000) / 100, cc[i % 8 + 1]
}
