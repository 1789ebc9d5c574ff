# Requests/s against threads for every server_throughput variant (scripts/bench.sh runs it).
#   gnuplot -e "datafile='throughput.dat'; outfile='chart.png'" bench/throughput.gp
set terminal pngcairo size 900,560 noenhanced font 'sans,11'
set output outfile
set title 'dbpool: primary-key SELECT per request against MariaDB on loopback (pool size 8)'
set xlabel 'threads'
set ylabel 'requests per second (median of rounds)'
set logscale x 2
set xrange [0.8:80]
set xtics (1, 8, 64)
set key outside right top
set grid
set yrange [0:*]
set style data linespoints
set datafile missing 'NaN'
stats datafile using 1 nooutput
columns = STATS_columns
# gnuplot's colours repeat after 8 lines: lines 9-12 get their own colours and dashes.
set linetype 9 lc rgb '#8b4513' dashtype 2
set linetype 10 lc rgb '#505050' dashtype 2
set linetype 11 lc rgb '#ff1493' dashtype 2
set linetype 12 lc rgb '#00bfff' dashtype 2
plot for [i=2:columns] datafile using 1:i title columnheader(i) linetype (i - 1) lw 2 pt (i + 3) ps 1.2
