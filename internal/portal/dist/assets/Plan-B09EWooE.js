import{j as r,d as t}from"./index-BtJ4-ujf.js";function n(){return r.jsx(t,{order:2,children:"Plan"})}export{n as default};
