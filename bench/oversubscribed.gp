# The oversubscribed curve: cycles/s against threads on a pool of 8 no-op connections, one line
# per pool (scripts/bench.sh runs it on RESULTS_DIR/curve.dat, written by bench/report.py).
#   gnuplot -e "datafile='curve.dat'; outfile='chart.png'" bench/oversubscribed.gp
set terminal pngcairo size 900,560 noenhanced font 'sans,11'
set output outfile
set title 'acquire+release of a no-op connection, 8 connections, 2 cores (median of repetitions)'
set xlabel 'threads (log scale)'
set ylabel 'million cycles per second, all threads (log scale)'
set logscale x 2
set logscale y 10
set xrange [0.8:1300]
set xtics (1, 2, 4, 8, 16, 64, 256, 1024)
set key outside right top
set grid
set style data linespoints
stats datafile using 1 nooutput
columns = STATS_columns
# gnuplot's colours repeat after 8 lines: lines 9-12 get their own colours and dashes.
set linetype 9 lc rgb '#8b4513' dashtype 2
set linetype 10 lc rgb '#505050' dashtype 2
set linetype 11 lc rgb '#ff1493' dashtype 2
set linetype 12 lc rgb '#00bfff' dashtype 2
plot for [i=2:columns] datafile using 1:i title columnheader(i) linetype (i - 1) lw 2 pt (i + 3) ps 1.2
