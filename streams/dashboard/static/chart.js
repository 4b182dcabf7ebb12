"use strict";
// A small SVG line chart for the dashboard's history: time on x, one or more series on y,
// gaps where a value is null (its source was down). No dependencies, served with the page.
//
//   drawChart(svg, times, [{values, className}], {format, span, integer})
//
// `times` are epoch ms (ascending); `format(y)` labels the y axis; `span` is the x range in ms
// ending at the newest time; `integer` (optional) keeps y ticks on whole numbers. The chart is redrawn from scratch on every call.

const CHART = {width: 600, height: 170, left: 58, right: 10, top: 10, bottom: 22};
const SVG_NS = "http://www.w3.org/2000/svg";

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

// 1, 2 or 5 times a power of ten, at least max/ticks: round numbers on the y axis.
function niceStep(max, ticks) {
  const rough = max / ticks;
  const power = Math.pow(10, Math.floor(Math.log10(rough)));
  for (const factor of [1, 2, 5, 10]) {
    if (factor * power >= rough) return factor * power;
  }
  return 10 * power;
}

function drawChart(svg, times, series, options) {
  const {width, height, left, right, top, bottom} = CHART;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const end = times.length ? times[times.length - 1] : Date.now();
  const start = end - options.span;
  let max = 0;
  let points = 0;
  for (const item of series) {
    item.values.forEach((value, index) => {
      if (value !== null && times[index] >= start) { max = Math.max(max, value); points += 1; }
    });
  }
  let step = niceStep(max > 0 ? max : 1, 4);
  if (options.integer) step = Math.max(1, step);  // counts: no tick at half a message
  const top_value = Math.max(step, Math.ceil(max / step) * step);
  const x = (t) => left + ((t - start) / options.span) * (width - left - right);
  const y = (v) => top + (1 - v / top_value) * (height - top - bottom);

  for (let value = 0; value <= top_value + step / 2; value += step) {
    svg.appendChild(svgElement("line", {class: "grid", x1: left, x2: width - right,
                                        y1: y(value), y2: y(value)}));
    svg.appendChild(svgElement("text", {class: "tick", x: left - 6, y: y(value) + 4,
                                        "text-anchor": "end"}, options.format(value)));
  }
  const minutes = options.span / 60000;
  const every = minutes > 30 ? 15 : minutes > 10 ? 5 : 1;
  for (let minute = 0; minute <= minutes; minute += every) {
    const t = end - minute * 60000;
    svg.appendChild(svgElement("text", {class: "tick", x: x(t), y: height - 6,
                                        "text-anchor": minute === 0 ? "end" : "middle"},
                               minute === 0 ? "now" : `-${minute} min`));
  }
  for (const item of series) {
    let path = "";
    let drawing = false;
    item.values.forEach((value, index) => {
      if (value === null || times[index] < start) { drawing = false; return; }
      path += `${drawing ? "L" : "M"}${x(times[index]).toFixed(1)},${y(value).toFixed(1)}`;
      drawing = true;
    });
    svg.appendChild(svgElement("path", {class: "series " + item.className, d: path},
                               undefined));
  }
  svg.dataset.points = String(points);
  if (points === 0) {
    svg.appendChild(svgElement("text", {class: "empty", x: width / 2, y: height / 2,
                                        "text-anchor": "middle"}, "no data yet"));
  }
}
