import{j as t,d as r}from"./index-BtJ4-ujf.js";function i(){return t.jsx(r,{order:2,children:"Audit"})}export{i as default};
